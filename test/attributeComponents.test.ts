import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { configSchema, type ComponentRule } from '../src/app/configSchema.js';
import { OTHER, attributeComponents, knownComponents, type AttributionFacts, type ProcessIdentity } from '../src/sources/attributeComponents.js';

/** The Meetily defaults, as the loader hands them to the sampler. */
const DEFAULTS: readonly ComponentRule[] = configSchema.parse({}).components.rules;
const ENGINE = 'engine';
const SELF = 4000;

const proc = (pid: number, ppid: number, name: string, cmdline = name): ProcessIdentity => ({ pid, ppid, name, cmdline });
const asObject = (map: Map<number, string>): Record<number, string> => Object.fromEntries(map);

describe('attributeComponents on a synthetic Meetily machine', () => {
  const rules: readonly ComponentRule[] = [
    ...DEFAULTS,
    { component: 'pidfiled', pidFile: '/run/myapp.pid' },
    { component: 'web', port: 8080 },
    { component: 'named-pidfile', name: 'worker', pidFile: '/run/worker.pid' },
  ];
  const facts: AttributionFacts = {
    selfPid: SELF,
    pidFiles: new Map([
      ['/run/myapp.pid', 7000],
      ['/run/worker.pid', 7101],
    ]),
    ports: new Map([
      [8080, [8000, 8001]],
      [5167, [3001]],
    ]),
  };
  const processes: ProcessIdentity[] = [
    proc(1, 0, 'systemd', '/sbin/init'),
    // Meetily: the app, its WebKit children, its audio pipeline.
    proc(1000, 1, 'meetily', '/usr/bin/meetily'),
    proc(1001, 1000, 'WebKitWebProcess', '/usr/lib/webkit2gtk-4.1/WebKitWebProcess 12'),
    proc(1002, 1000, 'WebKitNetworkProcess', '/usr/lib/webkit2gtk-4.1/WebKitNetworkProcess 13'),
    proc(1003, 1000, 'ffmpeg', 'ffmpeg -f pulse -i default -ar 16000 -'),
    proc(1004, 1000, 'whisper-server', 'whisper-server -m ggml-base.en.bin --port 8178'),
    proc(1005, 1000, 'sh', 'sh -c helper'),
    proc(1006, 1005, 'WebKitGPUProcess', 'WebKitGPUProcess'), // childOf looks at every ancestor, not just the parent
    // Ollama: the server, its runners, an unmatched shell and its child.
    proc(2000, 1, 'ollama', '/usr/local/bin/ollama serve'),
    proc(2001, 2000, 'ollama', '/usr/local/bin/ollama runner --model /models/llama3 --port 41234'),
    proc(2002, 2000, 'ollama_llama_server', 'ollama_llama_server --model x'),
    proc(2003, 2000, 'sh', 'sh -c nvidia-smi'),
    proc(2004, 2003, 'nvidia-smi', 'nvidia-smi'),
    // The Python backend, started from a shell.
    proc(3000, 1, 'bash', '-bash'),
    proc(3001, 3000, 'python3', 'python3 -m uvicorn main:app --host 0.0.0.0 --port 5167'),
    proc(3002, 3001, 'python3', 'python3 -c from multiprocessing.spawn import spawn_main'),
    proc(3003, 3000, 'python3.11', '/usr/bin/python3.11 /opt/meetily/backend/main.py'),
    // memtide itself (named like a rule on purpose) and its child.
    proc(SELF, 3000, 'ollama', 'node /usr/bin/memtide run'),
    proc(4001, SELF, 'node', 'node worker.js'),
    // A browser's WebKit process: not under meetily, so not frontend.
    proc(5000, 1, 'epiphany', 'epiphany'),
    proc(5001, 5000, 'WebKitWebProcess', 'WebKitWebProcess 7'),
    proc(5002, 1, 'WebKitWebProcess', 'WebKitWebProcess 8'),
    proc(5003, 1, 'xmeetily', 'xmeetily'),
    proc(5004, 5003, 'WebKitWebProcess', 'WebKitWebProcess 9'), // childOf is anchored too
    // Names match whole: these are not ollama / audio.
    proc(6000, 1, 'ollama-gui', 'ollama-gui'),
    proc(6001, 6000, 'sh', 'sh'),
    proc(6002, 1, 'my-ffmpeg', 'my-ffmpeg'),
    proc(6003, 1, 'Ollama', 'Ollama'),
    // pidFile and port rules, via facts.
    proc(7000, 1, 'myapp', 'myapp --daemon'),
    proc(7001, 7000, 'myapp-child', 'myapp-child'),
    proc(7100, 1, 'worker', 'worker'), // name matches, pid file names another pid
    proc(7101, 1, 'worker', 'worker'),
    proc(7102, 1, 'other-name', 'other-name'),
    proc(8000, 1, 'caddy', 'caddy run'),
    proc(8001, 1, 'caddy', 'caddy run'),
    proc(8002, 1, 'caddy', 'caddy run'),
    // A ppid cycle without a match, and one with a match: attribution must terminate.
    proc(9000, 9001, 'a', 'a'),
    proc(9001, 9000, 'b', 'b'),
    proc(9100, 9101, 'ollama', 'ollama'),
    proc(9101, 9100, 'c', 'c'),
    proc(9200, 9200, 'selfparent', 'selfparent'),
    // Orphan whose parent is not in the snapshot.
    proc(9300, 424242, 'orphan', 'orphan'),
  ];

  const expected: Record<number, string> = {
    1: OTHER,
    1000: 'backend',
    1001: 'frontend',
    1002: 'frontend',
    1003: 'audio',
    1004: 'audio',
    1005: 'backend',
    1006: 'frontend',
    2000: 'ollama',
    2001: 'ollama',
    2002: 'ollama',
    2003: 'ollama',
    2004: 'ollama',
    3000: OTHER,
    3001: 'backend',
    3002: 'backend',
    3003: 'backend',
    [SELF]: ENGINE,
    4001: ENGINE,
    5000: OTHER,
    5001: OTHER,
    5002: OTHER,
    5003: OTHER,
    5004: OTHER,
    6000: OTHER,
    6001: OTHER,
    6002: OTHER,
    6003: OTHER,
    7000: 'pidfiled',
    7001: 'pidfiled',
    7100: OTHER,
    7101: 'named-pidfile',
    7102: OTHER,
    8000: 'web',
    8001: 'web',
    8002: OTHER,
    9000: OTHER,
    9001: OTHER,
    9100: 'ollama',
    9101: 'ollama',
    9200: OTHER,
    9300: OTHER,
  };

  it('attributes every process exactly as expected', () => {
    expect(asObject(attributeComponents(processes, rules, ENGINE, facts))).toEqual(expected);
  });

  it('does not depend on the order of the snapshot', () => {
    expect(asObject(attributeComponents([...processes].reverse(), rules, ENGINE, facts))).toEqual(expected);
  });

  it('with the default rules and no facts, the pidFile/port processes fall back to other', () => {
    const result = attributeComponents(processes, DEFAULTS, ENGINE, { selfPid: SELF });
    for (const pid of [7000, 7001, 7101, 8000, 8001]) expect(result.get(pid)).toBe(OTHER);
    expect(result.get(1001)).toBe('frontend');
    expect(result.get(2003)).toBe('ollama');
  });

  it('names the engine component as configured', () => {
    const result = attributeComponents(processes, rules, 'memtide', facts);
    expect(result.get(SELF)).toBe('memtide');
    expect(result.get(4001)).toBe('memtide');
  });

  it('the first matching rule wins', () => {
    const both: ComponentRule[] = [
      { component: 'first', name: 'x' },
      { component: 'second', name: 'x' },
    ];
    expect(asObject(attributeComponents([proc(1, 0, 'x')], both, ENGINE, { selfPid: -1 }))).toEqual({ 1: 'first' });
    // Default order: a whisper process running main.py is audio (name rule) before backend (cmdline rule).
    expect(asObject(attributeComponents([proc(1, 0, 'whisper', 'python main.py')], DEFAULTS, ENGINE, { selfPid: -1 }))).toEqual({ 1: 'audio' });
  });

  it('knownComponents lists the rules\' components, the engine and other, once each', () => {
    expect(knownComponents(DEFAULTS, ENGINE)).toEqual(['frontend', 'ollama', 'audio', 'backend', ENGINE, OTHER]);
    expect(knownComponents(rules, 'other')).toEqual(['frontend', 'ollama', 'audio', 'backend', 'pidfiled', 'web', 'named-pidfile', OTHER]);
  });
});

describe('deep trees', () => {
  const DEPTH = 10_000;

  it('a 10,000-deep chain of unmatched processes inherits its root without overflowing the stack', () => {
    const chain = [proc(1, 0, 'ollama', 'ollama serve')];
    for (let pid = 2; pid <= DEPTH; pid += 1) chain.push(proc(pid, pid - 1, 'sh'));
    for (const order of [chain, [...chain].reverse()]) {
      const result = attributeComponents(order, DEFAULTS, ENGINE, { selfPid: -1 });
      expect(result.size).toBe(DEPTH);
      expect([...new Set(result.values())]).toEqual(['ollama']);
    }
  });

  it('a 10,000-deep unmatched chain is all other; a childOf rule sees an ancestor 10,000 levels up', () => {
    const chain = [proc(1, 0, 'meetily')];
    for (let pid = 2; pid < DEPTH; pid += 1) chain.push(proc(pid, pid - 1, 'sh'));
    chain.push(proc(DEPTH, DEPTH - 1, 'WebKitWebProcess'));
    const result = attributeComponents(chain, DEFAULTS, ENGINE, { selfPid: -1 });
    expect(result.get(1)).toBe('backend');
    expect(result.get(DEPTH - 1)).toBe('backend');
    expect(result.get(DEPTH)).toBe('frontend');

    const unmatched = chain.slice(1, -1).map((p) => (p.pid === 2 ? { ...p, ppid: 0 } : p));
    expect([...new Set(attributeComponents(unmatched, DEFAULTS, ENGINE, { selfPid: -1 }).values())]).toEqual([OTHER]);
  });

  it('a 10,000-long ppid cycle terminates', () => {
    const ring = Array.from({ length: DEPTH }, (_, i) => proc(i + 1, ((i + 1) % DEPTH) + 1, 'sh'));
    expect([...new Set(attributeComponents(ring, DEFAULTS, ENGINE, { selfPid: -1 }).values())]).toEqual([OTHER]);
    ring[5000] = { ...ring[5000]!, name: 'ffmpeg' };
    const result = attributeComponents(ring, DEFAULTS, ENGINE, { selfPid: -1 });
    expect([...new Set(result.values())]).toEqual(['audio']);
  });
});

// ---------------------------------------------------------------------------------------
// Property: random process forests under the default rules
// ---------------------------------------------------------------------------------------

const NAMES = ['systemd', 'bash', 'sh', 'ollama', 'ollama-gui', 'ollama_llama_server', 'meetily', 'WebKitWebProcess', 'ffmpeg', 'whisper', 'python3', 'node'];
const CMDLINES = ['', 'python3 -m uvicorn main:app', 'python main.py', 'serve', 'sleep 5'];

interface Forest {
  processes: ProcessIdentity[];
  selfPid: number;
}

/** A random forest: each process's parent is an earlier process, a pid absent from the snapshot, or 0. */
const forestArb: fc.Arbitrary<Forest> = fc
  .array(
    fc.record({
      parent: fc.oneof({ weight: 4, arbitrary: fc.nat() }, { weight: 1, arbitrary: fc.constantFrom(-1, -2) }),
      name: fc.constantFrom(...NAMES),
      cmdline: fc.constantFrom(...CMDLINES),
    }),
    { minLength: 1, maxLength: 120 },
  )
  .chain((nodes) =>
    fc.record({
      pids: fc.shuffledSubarray(
        Array.from({ length: nodes.length * 3 }, (_, i) => i + 2),
        { minLength: nodes.length, maxLength: nodes.length },
      ),
      self: fc.integer({ min: -1, max: nodes.length - 1 }),
      order: fc.shuffledSubarray(
        nodes.map((_, i) => i),
        { minLength: nodes.length, maxLength: nodes.length },
      ),
    }).map(({ pids, self, order }) => {
      const processes = nodes.map((node, index): ProcessIdentity => {
        // -1: a root (ppid 0); -2: a parent that exited (absent pid 1); else one of the earlier processes.
        const ppid = index === 0 || node.parent === -1 ? 0 : node.parent === -2 ? 1 : pids[node.parent % index]!;
        return { pid: pids[index]!, ppid, name: node.name, cmdline: node.cmdline ? `${node.name} ${node.cmdline}` : node.name };
      });
      return { processes: order.map((i) => processes[i]!), selfPid: self >= 0 ? pids[self]! : -1 };
    }),
  );

/** The rule spec, written independently of the implementation: name whole, cmdline searched, childOf any ancestor. */
function directComponent(process: ProcessIdentity, byPid: Map<number, ProcessIdentity>, selfPid: number): string | undefined {
  if (process.pid === selfPid) return ENGINE;
  const names: string[] = [];
  for (let parent = byPid.get(process.ppid); parent; parent = byPid.get(parent.ppid)) names.push(parent.name);
  const rule = DEFAULTS.find(
    (r) =>
      (r.name === undefined || new RegExp(`^(?:${r.name})$`).test(process.name)) &&
      (r.cmdline === undefined || new RegExp(r.cmdline).test(process.cmdline)) &&
      (r.childOf === undefined || names.some((n) => new RegExp(`^(?:${r.childOf})$`).test(n))),
  );
  return rule?.component;
}

describe('property: random forests with the default rules', () => {
  it('every process gets exactly one known component; unmatched processes take their parent\'s, else other', () => {
    const known = knownComponents(DEFAULTS, ENGINE);
    fc.assert(
      fc.property(forestArb, ({ processes, selfPid }) => {
        const result = attributeComponents(processes, DEFAULTS, ENGINE, { selfPid });
        expect([...result.keys()].sort((a, b) => a - b)).toEqual(processes.map((p) => p.pid).sort((a, b) => a - b));
        const byPid = new Map(processes.map((p) => [p.pid, p]));
        for (const process of processes) {
          const component = result.get(process.pid)!;
          expect(known).toContain(component);
          const direct = directComponent(process, byPid, selfPid);
          if (direct !== undefined) expect(component).toBe(direct);
          else if (byPid.has(process.ppid)) expect(component).toBe(result.get(process.ppid));
          else expect(component).toBe(OTHER);
        }
        // Order independence.
        expect(asObject(attributeComponents([...processes].reverse(), DEFAULTS, ENGINE, { selfPid }))).toEqual(asObject(result));
      }),
      { numRuns: 300 },
    );
  });
});
