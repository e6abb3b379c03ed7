/**
 * What a routing line holds, as the log writes it: the request path fills in its own record
 * (proxy/routing-record.ts, with narrower types), which is one of these.
 */
export interface RoutingLineFields {
  event: 'request';
  /**
   * reqId, requestId and traceId are ids harbor-lb made or checked (request-identity.ts): letters,
   * digits and a few marks, nothing JSON escapes. They are written as they are.
   */
  reqId: string;
  requestId: string;
  traceId: string;
  client: { ip: string; user?: string; userFrom?: string };
  method: string;
  path: string;
  /** route, reason and affinity are words of harbor-lb's own (RoutingRecord names them): written as they are. */
  route: string;
  node: string | null;
  reason: string | null;
  affinity: string;
  status: number;
  durationMs: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  error?: string;
}

/** What JSON.stringify would escape in a string: quotes, backslashes, control characters, lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A JSON string: quoted as it is when nothing in it needs escaping (nearly always), else as JSON.stringify writes it. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** A JSON number, as JSON.stringify writes it (null for NaN and the infinities). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/**
 * A duration in ms as JSON.stringify writes it. The request path rounds it to the microsecond
 * (3 decimals): such a value is written from integers, as V8's shortest form of a double costs
 * several times more, a tenth of the line's cost. Any other value goes to num.
 */
function millis(n: number): string {
  const us = Math.round(n * 1000);
  if (!(us >= 0 && us < MAX_US && us / 1000 === n)) return num(n);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return String(whole);
  // The 3 decimals without their trailing zeros: the shortest form of a decimal that has them.
  const digits = frac % 100 === 0 ? String(frac / 100) : frac % 10 === 0 ? (frac < 100 ? '0' : '') + frac / 10 : (frac < 10 ? '00' : frac < 100 ? '0' : '') + frac;
  return `${whole}.${digits}`;
}

/** Below it a duration has at most 15 significant digits: its decimal is the double's shortest form. */
const MAX_US = 1e15;

const strOrNull = (s: string | null): string => (s === null ? 'null' : str(s));

/**
 * The routing line of a request, as JSON, field by field in a fixed order: the same text
 * JSON.stringify gives for the record (after `level` and `time`, as pino writes them), at about a
 * third of its cost. It is written once per request, and a record's shape varies (optional fields
 * set or not), which keeps JSON.stringify off its fast path. Only what a client or an operator can
 * put text into is looked at for what JSON escapes: the ids and words harbor-lb made or checked
 * are not (RoutingLineFields), which saves six of the ten looks.
 */
export function routingLine(time: string, r: RoutingLineFields): string {
  const c = r.client;
  const client = `{"ip":${str(c.ip)}${c.user === undefined ? '' : `,"user":${str(c.user)}`}${c.userFrom === undefined ? '' : `,"userFrom":${str(c.userFrom)}`}}`;
  return (
    `{"level":"info","time":"${time}","event":"request","reqId":"${r.reqId}","requestId":"${r.requestId}","traceId":"${r.traceId}","client":${client},` +
    `"method":${str(r.method)},"path":${str(r.path)},"route":"${r.route}","node":${strOrNull(r.node)},"reason":${r.reason === null ? 'null' : `"${r.reason}"`},"affinity":"${r.affinity}",` +
    `"status":${num(r.status)},"durationMs":${millis(r.durationMs)},"attempts":${num(r.attempts)},"bytesIn":${num(r.bytesIn)},"bytesOut":${num(r.bytesOut)}` +
    `${r.error === undefined ? '' : `,"error":${str(r.error)}`}}\n`
  );
}
