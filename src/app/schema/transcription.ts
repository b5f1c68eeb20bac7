/** Config section `transcription`: Transcription: engine, model, concurrency, queue. */
import { z } from 'zod';

export const transcriptionSchema = z.strictObject({}).describe('Transcription: engine, model, concurrency, queue.').prefault({});
export type TranscriptionConfig = z.output<typeof transcriptionSchema>;
