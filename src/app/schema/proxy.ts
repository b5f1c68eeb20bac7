/** Config section `proxy`: Ollama-compatible proxy: listen address, upstream, concurrency. */
import { z } from 'zod';

export const proxySchema = z.strictObject({}).describe('Ollama-compatible proxy: listen address, upstream, concurrency.').prefault({});
export type ProxyConfig = z.output<typeof proxySchema>;
