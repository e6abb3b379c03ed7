import pino, { type DestinationStream, type Logger } from 'pino';
import { createPrettyDestination } from './pretty-format.js';
import { BatchedDestination } from './batched-destination.js';
import { routingLine, type RoutingLineFields } from './routing-line.js';
import { PIPE_BUF, sharedWriteLimit } from './write-limit.js';

export type { Logger };

/**
 * Paths pino blanks out if a caller ever passes such an object. The routing log never copies headers,
 * so this is a second line of defence, not the first.
 */
const REDACT = [
  'authorization',
  'cookie',
  'password',
  'token',
  '*.authorization',
  '*.cookie',
  '*.password',
  '*.token',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["proxy-authorization"]',
];

export interface LogOptions {
  level: string;
  /** Unset: pretty when stdout is a terminal, JSON otherwise. */
  format?: 'json' | 'pretty';
  /** Where lines go; the default is stdout, written asynchronously so the request path never blocks on it. */
  destination?: DestinationStream;
  /**
   * Several processes write to the same output (request workers): every write is whole lines, of
   * at most PIPE_BUF bytes to a pipe, which never interleaves them with another process's, and of
   * a whole batch to a regular file (write-limit.ts).
   */
  shared?: boolean;
  /** Routing lines go out together, this many ms after the first of them (0: at the end of its turn); default 20. */
  batchWindow?: number;
  /** When held routing lines go out, instead of batchWindow's timer (unit tests). */
  scheduleFlush?: (flush: () => void) => void;
}

export interface Loggers {
  /** Events, state changes, warnings: redacted as a second line of defence. */
  logger: Logger;
  /**
   * One line per proxied request. Its records are built field by field from values that hold no
   * secret (see proxy/routing-record.ts), so the per-line cost of redaction is not paid on the hot path.
   */
  routing: RoutingLog;
}

/**
 * The routing log: one JSON line per request, written straight to the log's destination in the
 * same shape pino writes (`level`, `time`, then the record's fields). It is the one line written
 * per request, so it is built field by field (routingLine) with a timestamp formatted once a
 * second; the destination batches the writes (BatchedDestination, 20 ms) and is flushed on shutdown.
 */
export class RoutingLog {
  enabled: boolean;
  #second = -1;
  #prefix = '';

  constructor(
    private readonly pinoLogger: Logger,
    private readonly destination: BatchedDestination,
  ) {
    this.enabled = pinoLogger.isLevelEnabled('info');
  }

  /** A new log level from a config reload (routing lines are info). */
  setLevel(level: string): void {
    this.pinoLogger.level = level;
    this.enabled = this.pinoLogger.isLevelEnabled('info');
  }

  write(record: RoutingLineFields): void {
    if (!this.enabled) return;
    this.destination.writeBatched(routingLine(this.#now(), record));
  }

  flush(): Promise<void> {
    return flushLogger(this.pinoLogger);
  }

  /** ISO 8601 with milliseconds, as pino's isoTime; the date part is formatted once per second. */
  #now(): string {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#prefix = new Date(second * 1000).toISOString().slice(0, 20);
    }
    const ms = now - second * 1000;
    return `${this.#prefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  }
}

export function createLoggers(opts: LogOptions): Loggers {
  // Opening process.stdout puts a pipe or socket there in non-blocking mode (libuv), whatever the
  // format: a reader that stops then makes writes wait (EAGAIN, tried again), never a write that
  // does not return, which would hold the thread pool and the process's exit.
  const stdoutIsTty = process.stdout.isTTY === true;
  // Unset: readable on a terminal, JSON lines everywhere else (files, pipes, log shippers).
  const format = opts.format ?? (stdoutIsTty ? 'pretty' : 'json');
  // Shared with other processes: whole lines, as much at once as stdout keeps whole (a given
  // destination is the caller's: the pipe's limit, as before stdout was asked).
  const maxWrite = opts.shared ? (opts.destination === undefined ? sharedWriteLimit(1) : PIPE_BUF) : undefined;
  // stdout as JSON is written Buffers (see BatchedDestination's `bytes`).
  const bytes = opts.destination === undefined && format === 'json';
  const destination = new BatchedDestination(
    opts.destination ??
      (format === 'pretty'
        ? createPrettyDestination({ colorize: process.stdout.isTTY === true })
        : pino.destination({ dest: 1, sync: false, contentMode: 'buffer', ...(maxWrite ? { maxWrite } : {}) })),
    maxWrite,
    opts.scheduleFlush ?? batchTimer(opts.batchWindow ?? 20),
    bytes,
  );
  const base = {
    level: opts.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return {
    logger: pino({ ...base, redact: { paths: REDACT, censor: '[REDACTED]' } }, destination),
    routing: new RoutingLog(pino(base, destination), destination),
  };
}

/** Calls a batch's flush at the end of its window: a timer, or the end of the event-loop turn for 0. */
function batchTimer(ms: number): (flush: () => void) => void {
  return ms === 0 ? (flush) => void setImmediate(flush) : (flush) => void setTimeout(flush, ms).unref();
}

/** Flushes buffered lines; used on shutdown so the last routing lines are not lost. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve();
    }
  });
}
