/** Config section `alerts`: Alerts: thresholds, repeat interval, recovery, flap damping, sinks. */
import { z } from 'zod';

export const alertsSchema = z.strictObject({}).describe('Alerts: thresholds, repeat interval, recovery, flap damping, sinks.').prefault({});
export type AlertsConfig = z.output<typeof alertsSchema>;
