/** Config section `audio`: Audio decoding and chunking for transcription. */
import { z } from 'zod';

export const audioSchema = z.strictObject({}).describe('Audio decoding and chunking for transcription.').prefault({});
export type AudioConfig = z.output<typeof audioSchema>;
