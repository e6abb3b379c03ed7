import { spawnSync } from 'node:child_process';

/** The largest young-generation semi-space a request worker gets unless told otherwise, in MiB. */
export const WORKER_SEMI_SPACE_MIB = 16;

/** V8's mid-tier compiler, which a request worker runs without unless told otherwise. */
export const NO_MAGLEV = '--no-maglev';

/**
 * How far V8 lets a request worker's old generation grow past what survived its last full
 * collection before the next one, unless told otherwise: 1.5 times. V8's own factor goes up to 4
 * on a fast collector, and under a connection per request a worker's peak resident memory grew
 * 63–95 MiB over its idle with it against 38–47 with this, for about 10% more CPU per new
 * connection and none measurable per kept-alive request (docs/benchmarks.md).
 */
export const HEAP_GROWING = '--heap-growing-percent=50';

/**
 * WebAssembly left at V8's baseline compiler (Liftoff), never tiered up to TurboFan: both flags
 * are needed (either alone still tiered up). The only WebAssembly a worker runs is undici's HTTP
 * parser (llhttp), which reads the answers to requests other than GETs and HEADs (an upload's
 * POST, PATCH and PUT, UI posts, deletes); TurboFan compiling its large state machine took 21–23
 * MiB of V8's malloc'd memory at once, on a worker's first pushes: a worker was then resident at
 * 114–135 MiB against 111–119 without the tier-up (docs/benchmarks.md). Blob bodies and GETs never
 * pass through llhttp. Not `--liftoff-only`, which does the same but, as V8 says, for testing:
 * under it a function Liftoff cannot compile stops the process instead of going to TurboFan.
 */
export const NO_WASM_TIER_UP: readonly string[] = ['--no-wasm-tier-up', '--no-wasm-dynamic-tiering'];

/**
 * The Node.js flags a request worker is started with: the control plane's own (heap sizes an
 * operator chose), less the test runner's and debugger's, and, unless the operator chose them
 * (on the command line, or the semi-space in NODE_OPTIONS):
 * - a young generation capped at WORKER_SEMI_SPACE_MIB. On Node 24 V8 lets it grow to 64 MiB
 *   under load: about 140 MiB more per process at the same CPU (docs/operations.md).
 * - no Maglev (NO_MAGLEV, when this Node has the flag: `accepted`). Under small GETs its
 *   compilations raised V8's own malloc'd memory to 34–49 MiB at their peak, against 26–28
 *   without, and a worker's peak resident memory over its idle from a median of 49 MiB to 63, for
 *   no measurable CPU per request (docs/benchmarks.md). Code hot enough is still compiled by
 *   TurboFan.
 * - a slower-growing old generation (HEAP_GROWING, when this Node has the flag).
 * - WebAssembly left at its baseline tier (NO_WASM_TIER_UP, when this Node has the flags).
 * Workers are where the load is, so they get these however harbor-lb was started (a systemd unit,
 * npx), not only from the container.
 */
export function workerExecArgv(execArgv: readonly string[], env: NodeJS.ProcessEnv, accepted: ReadonlySet<string> = new Set()): string[] {
  const args = execArgv.filter((a) => !a.startsWith('--test') && !a.startsWith('--inspect'));
  const out = [...args];
  if (![...args, env.NODE_OPTIONS ?? ''].some((a) => SEMI_SPACE.test(a))) out.push(`--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`);
  for (const flag of wantedFlags(args)) if (accepted.has(flag)) out.push(flag);
  return out;
}

/**
 * The V8 flags a worker gets unless the operator chose about them on Node's command line
 * (`execArgv`): NO_MAGLEV, HEAP_GROWING, NO_WASM_TIER_UP. Each only if this Node accepts it
 * (acceptedFlags).
 */
export function wantedFlags(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  if (!choseMaglev(execArgv)) out.push(NO_MAGLEV);
  if (!execArgv.some((a) => HEAP_GROWING_CHOICE.test(a))) out.push(HEAP_GROWING);
  if (!execArgv.some((a) => WASM_TIERS_CHOICE.test(a))) out.push(...NO_WASM_TIER_UP);
  return out;
}

/** Of `flags`, those the Node at `execPath` starts with: asked once for all, then one by one if it refused. */
export function acceptedFlags(execPath: string, flags: readonly string[]): Set<string> {
  if (flags.length === 0 || nodeAccepts(execPath, ...flags)) return new Set(flags);
  return new Set(flags.filter((f) => nodeAccepts(execPath, f)));
}

/** The largest semi-space's flag as V8 reads it: dashes or underscores. */
const SEMI_SPACE = /--max[-_]semi[-_]space[-_]size/;
/** Any choice about Maglev: `--maglev`, `--no-maglev` (or `--nomaglev`, as V8 also reads it), `--maglev-…`. */
const MAGLEV = /^--(?:no[-_]?)?maglev/;
/** A choice of V8's heap growing factor. */
const HEAP_GROWING_CHOICE = /^--heap[-_]growing[-_]percent/;
/**
 * A choice about WebAssembly's tiers: `--liftoff…`, `--wasm-tier-up`, `--wasm-dynamic-tiering`, a
 * tiering setting (`--wasm-tiering-budget`, `--wasm-eager-tier-up-function`…), their `--no-`,
 * `--no_` and `--no…` forms (V8 reads all three).
 */
const WASM_TIERS_CHOICE = /^--(?:no[-_]?)?(?:liftoff|wasm[-_]\S*tier)/;

/**
 * Whether the Node.js at `execPath` starts with `flags`. V8 flags come and go between releases,
 * and Node refuses to start with one it does not know: a worker started with it would never
 * come up. Asked once, when the worker pool is made (a process that exits at once, ~40 ms),
 * without NODE_OPTIONS: a preload there (a tracing agent's timer) would keep it alive.
 */
export function nodeAccepts(execPath: string, ...flags: string[]): boolean {
  const r = spawnSync(execPath, [...flags, '-e', ''], { stdio: 'ignore', timeout: 10_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return r.status === 0;
}

/** Whether the operator chose about Maglev on Node's command line (then nothing is asked or added). */
export function choseMaglev(execArgv: readonly string[]): boolean {
  return execArgv.some((a) => MAGLEV.test(a));
}
