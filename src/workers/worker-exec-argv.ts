/** The largest young-generation semi-space a request worker gets unless told otherwise, in MiB. */
export const WORKER_SEMI_SPACE_MIB = 16;

/**
 * The Node.js flags a request worker is started with: the control plane's own (heap sizes an
 * operator chose), less the test runner's and debugger's, and a young generation capped at
 * WORKER_SEMI_SPACE_MIB unless its largest size was given (on the command line or in
 * NODE_OPTIONS). On Node 24 V8 lets the young generation grow to 64 MiB under load: about 140 MiB
 * more per process at the same CPU (docs/operations.md). Workers are where the load is, so they
 * get the cap however harbor-lb was started (a systemd unit, npx), not only from the container.
 */
export function workerExecArgv(execArgv: readonly string[], env: NodeJS.ProcessEnv): string[] {
  const args = execArgv.filter((a) => !a.startsWith('--test') && !a.startsWith('--inspect'));
  const chosen = [...args, env.NODE_OPTIONS ?? ''].some((a) => SEMI_SPACE.test(a));
  return chosen ? args : [...args, `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`];
}

/** The largest semi-space's flag as V8 reads it: dashes or underscores. */
const SEMI_SPACE = /--max[-_]semi[-_]space[-_]size/;
