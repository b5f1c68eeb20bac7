/** The environment without MEMTIDE_* (the developer's own settings must not leak into a spawned CLI), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('MEMTIDE_')) env[key] = value;
  return { ...env, ...extra };
}
