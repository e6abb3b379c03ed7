/**
 * Keeps glibc's malloc from handing the memory of socket read buffers back to the kernel between
 * garbage collections.
 *
 * Node reads each socket into a fresh 64 KiB malloc'd buffer that lives until the garbage
 * collector frees it, and V8 collects after some tens of MiB of such external memory: the buffers
 * are freed in bulk. With glibc's start-up thresholds (mmap and trim 128 KiB) that
 * bulk free leaves a large free top of the heap, which free() returns to the kernel (brk down),
 * and the next 64 MiB of reads fault every page back in, zeroed. Measured on pulls through
 * harbor-lb: about 240,000 minor page faults per GiB (every 4 KiB page) and 1.2–1.6 s of CPU per
 * GiB, against under 2,000 faults and 0.7–0.9 s once the thresholds are raised. Whether a process
 * had fallen into the slow state depended on its history: the likeliest source of the spread and
 * of the "slower after a burst" in earlier pull measurements (docs/benchmarks.md).
 *
 * glibc raises both thresholds itself (documented in mallopt(3), "dynamic mmap threshold") when it
 * frees an mmap'd block bigger than the current mmap threshold, up to 32 MiB on 64-bit systems:
 * the mmap threshold becomes the block's size and the trim threshold twice that. An 8 MiB buffer
 * allocated once (never touched, so never resident, unless Node runs with --zero-fill-buffers) and
 * left to the collector does exactly that. An explicit setting of the thresholds, the top pad or
 * the mmap maximum (in GLIBC_TUNABLES or as MALLOC_*_ variables) turns the dynamic adjustment off
 * and is the operator's choice: then nothing is done. With musl the buffer
 * is allocated and freed and nothing else happens; off Linux nothing is done.
 */
export function raiseMallocThresholds(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform !== 'linux') return false;
  if (EXPLICIT_TUNABLE.test(env.GLIBC_TUNABLES ?? '') || EXPLICIT_VARIABLES.some((name) => env[name] !== undefined)) return false;
  void Buffer.allocUnsafeSlow(DYNAMIC_THRESHOLD_BLOCK);
  return true;
}

/**
 * The mmap threshold it leaves, and half the trim threshold (16 MiB): above the 4 MiB of upload
 * buffers freed at a time (the reclaimer's young collections) and the 64 KiB reads, so those are
 * reused, not faulted in again. It was 31 MiB (glibc's largest), which let each arena keep up to
 * 62 MiB it no longer used: over the bench's three rounds the workers grew 102–111 MiB over their
 * idle with it and 72 in the first run with this, at 520 faults per GiB pushed (docs/benchmarks.md;
 * the next run read 116, from one burst of token requests that fragments the arena either way).
 */
const DYNAMIC_THRESHOLD_BLOCK = 8 * 1024 * 1024;

/** glibc settings that turn its dynamic thresholds off (mallopt(3)); any of them set means hands off. */
const EXPLICIT_TUNABLE = /glibc\.malloc\.(?:trim_threshold|mmap_threshold|top_pad|mmap_max)/;
const EXPLICIT_VARIABLES = ['MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_'];

/**
 * The environment a request worker is started with: glibc's malloc arenas capped at 2 unless the
 * operator chose a number (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in GLIBC_TUNABLES). Each
 * thread that allocates (V8's collector helpers, the libuv pool) otherwise gets an arena of its
 * own, and with the raised trim threshold none of them gives memory back: measured, 2 workers
 * after small GETs, pulls and pushes, each worker peaked 68–80 MiB over its idle, 58–61 with 2
 * arenas, for no measurable CPU. It must be in the environment before the process starts, so
 * only the workers get it here; the Dockerfile sets it for the whole container.
 */
export function workerEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.MALLOC_ARENA_MAX !== undefined || /glibc\.malloc\.arena_max/.test(env.GLIBC_TUNABLES ?? '')) return env;
  return { ...env, MALLOC_ARENA_MAX: '2' };
}
