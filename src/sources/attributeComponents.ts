/**
 * Maps processes to components by the configured rules. Pure: the caller
 * reads pid files and listening ports (I/O) and passes them in, so the rules
 * can be tested without a machine and the sampler keeps all reads in one place.
 */
import type { ComponentRule } from '../app/configSchema.js';

/** The fields attribution looks at. */
export interface ProcessIdentity {
  pid: number;
  ppid: number;
  name: string;
  cmdline: string;
}

/** Facts read from the machine for the pidFile and port rules. */
export interface AttributionFacts {
  /** The engine's own pid: always the engine component. */
  selfPid: number;
  /** pid read from each rule's pidFile (by file path); missing when unreadable. */
  pidFiles?: ReadonlyMap<string, number>;
  /** Listening TCP port → pids that own a listening socket on it. */
  ports?: ReadonlyMap<number, readonly number[]>;
}

interface CompiledRule {
  rule: ComponentRule;
  name?: RegExp;
  cmdline?: RegExp;
  childOf?: RegExp;
}

export const OTHER = 'other';

// Rules change only when the config does; compile their expressions once per rules array.
const compiledCache = new WeakMap<readonly ComponentRule[], CompiledRule[]>();

function compile(rules: readonly ComponentRule[]): CompiledRule[] {
  let compiled = compiledCache.get(rules);
  if (!compiled) {
    compiled = rules.map((rule) => ({
      rule,
      // Names match whole (so "ollama" does not catch "ollama-gui"); command lines are searched.
      ...(rule.name ? { name: new RegExp(`^(?:${rule.name})$`) } : {}),
      ...(rule.cmdline ? { cmdline: new RegExp(rule.cmdline) } : {}),
      ...(rule.childOf ? { childOf: new RegExp(`^(?:${rule.childOf})$`) } : {}),
    }));
    compiledCache.set(rules, compiled);
  }
  return compiled;
}

function ancestors(process: ProcessIdentity, byPid: ReadonlyMap<number, ProcessIdentity>): ProcessIdentity[] {
  const out: ProcessIdentity[] = [];
  const seen = new Set<number>([process.pid]);
  let parent = byPid.get(process.ppid);
  while (parent && !seen.has(parent.pid)) {
    out.push(parent);
    seen.add(parent.pid);
    parent = byPid.get(parent.ppid);
  }
  return out;
}

function matches(compiled: CompiledRule, process: ProcessIdentity, byPid: ReadonlyMap<number, ProcessIdentity>, facts: AttributionFacts): boolean {
  const { rule } = compiled;
  if (compiled.name && !compiled.name.test(process.name)) return false;
  if (compiled.cmdline && !compiled.cmdline.test(process.cmdline)) return false;
  if (rule.pidFile !== undefined && facts.pidFiles?.get(rule.pidFile) !== process.pid) return false;
  if (rule.port !== undefined && !facts.ports?.get(rule.port)?.includes(process.pid)) return false;
  if (compiled.childOf) {
    const pattern = compiled.childOf;
    if (!ancestors(process, byPid).some((a) => pattern.test(a.name))) return false;
  }
  return true;
}

/**
 * Component of every process: the first matching rule; else the parent's
 * component (children inherit, so a runner spawned by `ollama serve` counts as
 * ollama); else "other". The engine's own process is `engineComponent`.
 */
export function attributeComponents(
  processes: readonly ProcessIdentity[],
  rules: readonly ComponentRule[],
  engineComponent: string,
  facts: AttributionFacts,
): Map<number, string> {
  const compiled = compile(rules);
  const byPid = new Map(processes.map((p) => [p.pid, p]));
  const direct = new Map<number, string>();
  for (const process of processes) {
    if (process.pid === facts.selfPid) {
      direct.set(process.pid, engineComponent);
      continue;
    }
    const hit = compiled.find((c) => matches(c, process, byPid, facts));
    if (hit) direct.set(process.pid, hit.rule.component);
  }

  const resolved = new Map<number, string>();
  const resolve = (process: ProcessIdentity): string => {
    const known = resolved.get(process.pid) ?? direct.get(process.pid);
    if (known !== undefined) return known;
    // Walk up iteratively (deep trees must not overflow the stack), then fill the chain.
    const chain: ProcessIdentity[] = [process];
    let component = OTHER;
    const seen = new Set<number>([process.pid]);
    let parent = byPid.get(process.ppid);
    while (parent && !seen.has(parent.pid)) {
      const found = resolved.get(parent.pid) ?? direct.get(parent.pid);
      if (found !== undefined) {
        component = found;
        break;
      }
      chain.push(parent);
      seen.add(parent.pid);
      parent = byPid.get(parent.ppid);
    }
    for (const member of chain) resolved.set(member.pid, component);
    return component;
  };
  for (const process of processes) resolved.set(process.pid, resolve(process));
  return resolved;
}

/** Components named by the rules plus the engine and "other": always reported, even at zero. */
export function knownComponents(rules: readonly ComponentRule[], engineComponent: string): string[] {
  return [...new Set([...rules.map((r) => r.component), engineComponent, OTHER])];
}
