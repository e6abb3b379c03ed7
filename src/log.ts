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

export function createLogger(opts: LogOptions): Logger {
  const destination =
    opts.destination ??
    (opts.format === 'pretty'
      ? pretty({ destination: 1, sync: false, colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l' })
      : pino.destination({ dest: 1, sync: false }));
  return pino(
    {
      level: opts.level,
      base: undefined,
      redact: { paths: REDACT, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
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
