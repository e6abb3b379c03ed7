import pretty from 'pino-pretty';
import type { DestinationStream } from 'pino';

type Colors = Parameters<Exclude<NonNullable<pretty.PrettyOptions['messageFormat']>, string | false>>[3]['colors'];

/**
 * The readable form of the log (`log.format: pretty`, a terminal, the demo): one short line per
 * request, `200 GET /v2/library/demo/manifests/v1 → harbor2 (pinned, 3 ms)`, and an event's own
 * message for everything else, coloured by level (and a request's by its status).
 */
export function createPrettyDestination(opts: { colorize: boolean; destination?: number | NodeJS.WritableStream }): DestinationStream {
  return pretty({
    destination: opts.destination ?? 1,
    sync: false,
    colorize: opts.colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    // The JSON fields stay in the JSON form; here each line says what happened in words.
    hideObject: true,
    messageFormat: (log, messageKey, _level, { colors }) => (log.event === 'request' ? requestLine(log, colors) : eventLine(log, messageKey)),
  });
}

/** `STATUS METHOD PATH → NODE (REASON[, N attempts], MS ms)[ ERROR]`. */
export function requestLine(log: Record<string, unknown>, colors?: Colors): string {
  const status = Number(log.status);
  const paint = colors === undefined ? (s: string) => s : status >= 500 ? colors.red : status >= 400 ? colors.yellow : colors.green;
  const attempts = Number(log.attempts);
  const why = [log.reason ?? 'not forwarded', attempts > 1 ? `${attempts} attempts` : '', `${formatMs(Number(log.durationMs))}`].filter((p) => p !== '').join(', ');
  const error = typeof log.error === 'string' ? ` ${log.error}` : '';
  return `${paint(String(status))} ${String(log.method)} ${String(log.path)} → ${String(log.node ?? '-')} (${why})${error}`;
}

function eventLine(log: Record<string, unknown>, messageKey: string): string {
  const msg = String(log[messageKey] ?? '');
  return typeof log.event === 'string' && !msg.includes(log.event) ? `[${log.event}] ${msg}` : msg;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}
