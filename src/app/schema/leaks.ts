/** Config section `leaks`: Leak detection (leakTrend): windows, floors, persistence. */
import { z } from 'zod';

export const leaksSchema = z.strictObject({}).describe('Leak detection (leakTrend): windows, floors, persistence.').prefault({});
export type LeaksConfig = z.output<typeof leaksSchema>;
