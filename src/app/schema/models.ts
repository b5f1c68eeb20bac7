/** Config section `models`: Ollama model governor: budget, idle unload, pinning, context sizing, quantization. */
import { z } from 'zod';

export const modelsSchema = z.strictObject({}).describe('Ollama model governor: budget, idle unload, pinning, context sizing, quantization.').prefault({});
export type ModelsConfig = z.output<typeof modelsSchema>;
