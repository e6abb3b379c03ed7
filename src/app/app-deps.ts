import type { DestinationStream } from 'pino';
import type { Config } from '../config/schema.js';
import type { HealthProbe } from '../health/active-checker.js';
import type { Clock } from '../util/clock.js';
import type { BufferReclaimer } from '../util/buffer-reclaimer.js';
import type { WriteBatch } from '../util/write-batch.js';
import type { Random } from '../util/random.js';
import type { WorkerSide } from '../workers/worker-side.js';

/** What a caller may replace when making an app (tests inject the clock, randomness, log destination, probe). */
export interface AppDeps {
  clock?: Clock;
  random?: Random;
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** Replaces the HTTP health probe (unit tests script answers with it). */
  healthProbe?: HealthProbe;
  /**
   * Reads the config again for a reload (SIGHUP, POST /-/reload): the config file, validated.
   * Without it the app cannot reload.
   */
  loadConfig?: () => Config;
  /**
   * Set in a request worker (workers/worker-main.ts): evidence goes to the control plane, node
   * state and pins come from it, and nothing is started but the proxy listener.
   */
  worker?: WorkerSide;
  /** Told of short-lived body buffers (tests count them); a young-generation collector by default. */
  reclaimer?: BufferReclaimer;
  /** Where heads to the nodes and small answers' ends wait (tests hold them); made at the end of each turn by default. */
  writes?: WriteBatch;
}

/** AppDeps with the clock and randomness decided. */
export type ResolvedDeps = AppDeps & { clock: Clock; random: Random };
