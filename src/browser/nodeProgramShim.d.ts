/**
 * TEMPORARY BRIDGE: delete this file once tsconfig.json and
 * tsconfig.build.json exclude the browser code (see docs/dashboard.md,
 * "Build"). It is excluded from tsconfig.browser.json, which checks the
 * browser code for real against the DOM lib.
 *
 * Why it exists: the Node programs (tsconfig.json, tsconfig.build.json)
 * include all of src/, so they also see the kit, the hooks and the dashboard
 * scripts. The DOM lib cannot be added to those programs: lib.dom's `Blob` and
 * `Transferable` types reject Node `Buffer`s in other files. So until the
 * browser directories are excluded there, this gives the Node programs loose
 * (`any`) types for the DOM names the browser code uses, so that neither
 * program breaks.
 */
declare var document: any;
declare var window: any;
declare var location: any;
declare var history: any;
declare var CSS: any;
declare var ResizeObserver: any;
declare var ImageBitmap: any;
declare var KeyboardEvent: any;
declare function requestAnimationFrame(callback: (time: number) => void): number;
declare function cancelAnimationFrame(handle: number): void;
type EventListener = (event: any) => void;
type RequestInfo = any;
interface ResizeObserver { [key: string]: any }
interface ImageBitmap { [key: string]: any }
interface Storage { [key: string]: any }
interface Node { [key: string]: any }
interface Element { [key: string]: any }
interface Document { [key: string]: any }
interface HTMLElement { [key: string]: any }
interface HTMLInputElement { [key: string]: any }
interface HTMLSelectElement { [key: string]: any }
interface HTMLTextAreaElement { [key: string]: any }
interface HTMLButtonElement { [key: string]: any }
interface HTMLLIElement { [key: string]: any }
interface HTMLTableRowElement { [key: string]: any }
interface HTMLAudioElement { [key: string]: any }
interface KeyboardEvent { [key: string]: any }
interface HTMLElementTagNameMap { [tag: string]: any }
interface HTMLMediaElementEventMap { [type: string]: any }
