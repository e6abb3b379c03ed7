import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

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
  format: 'json' | 'pretty';
  /** Where lines go; the default is stdout, written asynchronously so the request path never blocks on it. */
  destination?: DestinationStream;
}

export interface Loggers {
  /** Events, state changes, warnings: redacted as a second line of defence. */
  logger: Logger;
  /**
   * One line per proxied request. Its records are built field by field from values that hold no
   * secret (see proxy/handler.ts), so the per-line cost of redaction is not paid on the hot path.
   */
  routing: Logger;
}

export function createLoggers(opts: LogOptions): Loggers {
  const destination =
    opts.destination ??
    (opts.format === 'pretty'
      ? pretty({ destination: 1, sync: false, colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l' })
      : pino.destination({ dest: 1, sync: false }));
  const base = {
    level: opts.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return {
    logger: pino({ ...base, redact: { paths: REDACT, censor: '[REDACTED]' } }, destination),
    routing: pino(base, destination),
  };
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
