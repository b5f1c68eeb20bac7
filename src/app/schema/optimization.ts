/**
 * Config section `optimization`: the coordinator. The level and low-memory
 * mode pick a profile of concrete settings (src/app/optimizationProfiles.ts,
 * table in docs/optimization.md) that sits *below* what the user wrote, and
 * the plan of actions the coordinator takes when pressure rises.
 */
import { z } from 'zod';
import { duration } from '../schemaTypes.js';

export const OPTIMIZATION_LEVELS = ['basic', 'aggressive', 'maximum'] as const;
export type OptimizationLevel = (typeof OPTIMIZATION_LEVELS)[number];

export const optimizationSchema = z
  .strictObject({
    level: z
      .enum(OPTIMIZATION_LEVELS)
      .default('basic')
      .describe(
        'How hard memtide works for memory: basic (safe defaults; unloads idle models at high pressure, more at critical), aggressive (shorter idle timeouts, smaller budgets; every action from high), maximum (smallest footprint; every action from medium). Each picks concrete settings (table in docs/optimization.md, plan in docs/coordinator.md); settings you write yourself always win over the level.',
      ),
    lowMemory: z
      .boolean()
      .default(false)
      .describe(
        'Low-memory mode, whatever the level: the maximum profile plus one Ollama request and one audio chunk at a time, sampling every 2 s, dashboard updates every 5 s and the smallest history cache (table in docs/optimization.md).',
      ),
    observeOnly: z
      .boolean()
      .default(false)
      .describe(
        'Decide and record every coordinator action (executed: false in the actions table) but change nothing; also sets models.observeOnly (unless you set it yourself), so the model governor only observes too. For a gradual rollout.',
      ),
    settleMs: duration('Time after an action when "memory after" is measured for the actions table.').prefault('30s'),
    undoAfterMs: duration(
      'Hysteresis of the coordinator: an action is undone only after pressure has stayed below the level that triggered it for this long.',
    ).prefault('2m'),
    balanceBudgets: z
      .boolean()
      .default(true)
      .describe('When Ollama and audio are busy at once, lower the model budget by what transcription holds (and transcription concurrency by what a model load needs) so together they fit.'),
    batchYield: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'Hold batch transcription (file imports, re-transcription, POST /v1/transcribe; never live meetings) while Ollama works or a model is resident, and let whisper unload: the summary model and whisper are then never in memory at once for work that can wait. Off by default (imports start at once); on in the aggressive, maximum and low-memory profiles. Published as batchHold$ and the `batch` event of /api/events.',
          ),
        idleAfterMs: duration(
          'Batch transcription stays held this long after the last Ollama request ends: Meetily sends a summary as chunk requests back to back, and resuming whisper between two of them would put both models in memory anyway.',
        ).prefault('20s'),
        maxHoldMs: duration(
          'Longest batch hold in one stretch; then batch transcription runs until the models have been idle, even next to a resident model, so a model kept loaded all day never starves imports.',
        )
          .refine((ms) => ms > 0, 'must be longer than 0 ms')
          .prefault('15m'),
      })
      .describe('Batch transcription yields to the summary model (docs/coordinator.md).')
      .prefault({}),
  })
  .describe('Coordinator: optimization level, low-memory mode, observe-only rollout, action hysteresis, batch transcription yielding to the summary model.')
  .prefault({});
export type OptimizationConfig = z.output<typeof optimizationSchema>;
