import { oneOfNamesAt } from '../util/header-names.js';
import { TOKEN_BYTES } from '../util/http-token.js';

/**
 * Reads one HTTP/1.1 response from the bytes a node sends, read after read, without copying the
 * body: each piece of body is handed on as a view into the read it came in. What the read pool
 * (read-pool.ts) parses with; undici parses everything else.
 *
 * Strict where a lenient reading could make two parties disagree on where a response ends:
 * a folded or malformed header line, a control character, differing Content-Length values, a
 * chunk size that is not hex, an unasked-for protocol switch. Any of these is the node's malformed
 * answer. Bytes after the end of a response are not read (`trailing`): the response stands, as
 * undici has it, and the connection is not used again.
 */
export interface ResponseSink {
  /**
   * The final (non-1xx) head; rawHeaders alternate name and value (latin1, byte for byte), as
   * node:http hands them over. false pauses: feed() returns before any of the body.
   */
  head(status: number, rawHeaders: string[], statusText: string): boolean;
  /** A piece of body: a view into the read it came in, valid until the reader is fed again. */
  body(chunk: Buffer): void;
}

/** A node's answer that does not parse as HTTP/1.1; named and worded as undici's parser errors, so it reads the same. */
export class ResponseParseError extends Error {
  constructor(reason: string) {
    super(`the node's answer is not valid HTTP/1.1 (${reason})`);
    this.name = 'HTTPParserError';
  }
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** The most a response head may take; as undici's maxHeaderSize in node.ts. */
const MAX_HEAD = 65_536;
const MAX_CHUNK_LINE = 1024;
const EMPTY = Buffer.alloc(0);
/** The empty line that ends a head; as bytes, so finding it encodes nothing. */
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const MAX_TRAILERS = 16_384;
/** Which of the headers the reader acts on a header is ('' for any other), read from the head's bytes. */
const framingNameAt = oneOfNamesAt(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);
/** A Connection value that is `keep-alive` alone, in any case. */
const keepAliveAt = oneOfNamesAt(['keep-alive']);
/** Space or tab. */
const isBlank = (c: number): boolean => c === 32 || c === 9;
/**
 * The `timeout` parameter of a Keep-Alive header (RFC 2068 19.7.1.1), in seconds: its leading
 * digits, as undici reads it (`timeout=1.5` is 1 s, not no hint and the pool's longer idle).
 */
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout=(\d+)/i;

export class Http1ResponseReader {
  #head: Buffer = EMPTY;
  #framing: Framing | undefined;
  /** Chunked decoding: reading a size line, chunk data, the CRLF after it, or the trailer lines. */
  #chunk: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  #chunkLeft = 0;
  #line = '';
  #done = false;
  #keepAlive = false;
  /** What the answer's Keep-Alive header says the node keeps an idle connection for, in ms. */
  #keepAliveHint: number | undefined;
  #trailing = false;
  #trailerBytes = 0;
  /** The sink paused on the head just read. */
  #paused = false;

  constructor(
    private readonly method: string,
    private readonly sink: ResponseSink,
  ) {}

  /** The whole response has been read. */
  get done(): boolean {
    return this.#done;
  }

  /** The connection may carry another request once this response is done. */
  get keepAlive(): boolean {
    return this.#done && this.#keepAlive && !this.#trailing;
  }

  /** How long the node said it keeps the connection idle (`Keep-Alive: timeout=N`), in ms; undefined when it did not say. */
  get keepAliveHintMs(): number | undefined {
    return this.#keepAliveHint;
  }

  /** Body bytes still to come, when the answer said how many (Content-Length); undefined otherwise. */
  get bodyLeft(): number | undefined {
    return this.#framing?.kind === 'length' ? this.#framing.left : undefined;
  }

  /** The final head has been read. */
  get headRead(): boolean {
    return this.#framing !== undefined;
  }

  /**
   * Feeds one read; returns how much of it was read: all of it, unless the sink paused on the head
   * (the rest, body, is to be fed again once it resumes). Throws ResponseParseError on a malformed answer.
   */
  feed(data: Buffer): number {
    let at = 0;
    while (at < data.length) {
      if (this.#done) {
        this.#trailing = true;
        return data.length;
      }
      if (this.#framing !== undefined) at = this.#readBody(data, at);
      else {
        at = this.#readHead(data, at);
        if (this.#paused) {
          this.#paused = false;
          return at;
        }
      }
    }
    return data.length;
  }

  /** The node closed the connection: true when that ends the response (a body read until close). */
  closed(): boolean {
    if (this.#framing?.kind === 'close' && !this.#done) {
      this.#done = true;
      this.#keepAlive = false;
    }
    return this.#done;
  }

  #readHead(data: Buffer, at: number): number {
    // The head ends at the first empty line; it may span reads, so what came before is kept (copied:
    // the read buffer is reused for the next read).
    const kept = this.#head.length;
    const joined = kept === 0 ? data.subarray(at) : Buffer.concat([this.#head, data.subarray(at)]);
    const end = joined.indexOf(HEAD_END, Math.max(0, kept - 3));
    if (end === -1 ? joined.length > MAX_HEAD : end > MAX_HEAD) throw new ResponseParseError(`response head over ${MAX_HEAD} bytes`);
    if (end === -1) {
      this.#head = Buffer.from(joined);
      return data.length;
    }
    this.#head = EMPTY;
    this.#parseHead(joined, end);
    return at + end + 4 - kept;
  }

  /**
   * The head is `bytes[0..n)` (its empty line left off). Read a byte at a time from the buffer, not
   * from its string: a head is read per GET, and a string's characters, regular expressions and
   * splits cost more than the bytes they read (the same rules as STATUS_LINE, HTTP_TOKEN and
   * UNSAFE). Names and values are sliced from the head's latin1 string, at the same offsets.
   */
  #parseHead(bytes: Buffer, n: number): void {
    const text = bytes.toString('latin1', 0, n);
    const eol = text.indexOf('\r\n');
    const lineEnd = eol === -1 ? n : eol;
    const minor = statusLine(bytes, lineEnd);
    if (minor === -1) throw new ResponseParseError('a malformed status line');
    const status = (bytes[9]! - 48) * 100 + (bytes[10]! - 48) * 10 + (bytes[11]! - 48);
    // A protocol switch nobody asked for (a GET never asks), or no status at all.
    if (status < 100 || status === 101) throw new ResponseParseError(`status ${status}`);
    const raw: string[] = [];
    let length: string | undefined;
    let chunked = false;
    let encoded = false;
    let close = minor === 0;
    let hint: number | undefined;
    for (let at = eol === -1 ? n : eol + 2; at < n; ) {
      let colon = at;
      while (colon < n && TOKEN_BYTES[bytes[colon]!] === 1) colon++;
      if (colon === at || colon === n || bytes[colon] !== 58 /* ":" */) throw new ResponseParseError('a malformed or folded header line');
      // Only spaces and tabs are whitespace around a value (RFC 9110 5.5); \v or \xa0 are not.
      let from = colon + 1;
      while (from < n && isBlank(bytes[from]!)) from++;
      // The value runs to the line's CRLF; a CR or LF of its own is a control character.
      let end = from;
      for (; end < n; end++) {
        const c = bytes[end]!;
        if (c === 13 && bytes[end + 1] === 10) break;
        if ((c < 0x20 && c !== 9) || c === 0x7f) throw new ResponseParseError('a control character in a header value');
      }
      let to = end;
      while (to > from && isBlank(bytes[to - 1]!)) to--;
      const lower = framingNameAt(bytes, at, colon);
      const name = text.slice(at, colon);
      const value = text.slice(from, to);
      at = end + 2;
      if (lower === 'content-length') {
        // A second one, even the same, is refused as undici's parser refuses it: passed on, the client would read both.
        if (!digitsAt(bytes, from, to, 15) || length !== undefined) throw new ResponseParseError('an invalid or repeated Content-Length');
        length = value;
      } else if (lower === 'transfer-encoding') {
        const codings = value.toLowerCase().split(',').map((c) => c.replace(/^[ \t]+|[ \t]+$/g, ''));
        if (codings.filter((c) => c === 'chunked').length + (chunked ? 1 : 0) > 1) throw new ResponseParseError('chunked twice');
        encoded = true;
        chunked = codings[codings.length - 1] === 'chunked';
      } else if (lower === 'connection') {
        // `keep-alive` alone, as nodes send it on every answer, names no close.
        if (keepAliveAt(bytes, from, to) === '' && value.toLowerCase().split(',').some((t) => t.trim() === 'close')) close = true;
      } else if (lower === 'keep-alive') {
        const timeout = KEEP_ALIVE_TIMEOUT.exec(value);
        if (timeout !== null) hint = Number(timeout[1]) * 1000;
      }
      raw.push(name, value);
    }
    // 1xx: an interim answer; the final one follows.
    if (status < 200) return;
    this.#keepAlive = !close;
    this.#keepAliveHint = hint;
    if (this.method === 'HEAD' || status === 204 || status === 304) this.#framing = { kind: 'none' };
    else if (encoded) {
      // Both: refused, as undici's parser refuses it. Passed on, the client would be told a length
      // the body does not have (a proxy must drop it first, RFC 9112 6.3); nodes never send both.
      if (length !== undefined) throw new ResponseParseError('both Transfer-Encoding and Content-Length');
      this.#framing = chunked ? { kind: 'chunked' } : { kind: 'close' };
      if (!chunked) this.#keepAlive = false;
    } else if (length !== undefined) this.#framing = { kind: 'length', left: Number(length) };
    else {
      this.#framing = { kind: 'close' };
      this.#keepAlive = false;
    }
    this.#paused = !this.sink.head(status, raw, lineEnd > 13 ? text.slice(13, lineEnd) : '');
    if (this.#framing.kind === 'none' || (this.#framing.kind === 'length' && this.#framing.left === 0)) this.#done = true;
  }

  #readBody(data: Buffer, at: number): number {
    const framing = this.#framing!;
    if (framing.kind === 'close') {
      this.sink.body(data.subarray(at));
      return data.length;
    }
    if (framing.kind === 'length') {
      const n = Math.min(framing.left, data.length - at);
      framing.left -= n;
      if (framing.left === 0) this.#done = true;
      this.sink.body(data.subarray(at, at + n));
      return at + n;
    }
    return this.#readChunked(data, at);
  }

  #readChunked(data: Buffer, at: number): number {
    switch (this.#chunk) {
      case 'data': {
        const n = Math.min(this.#chunkLeft, data.length - at);
        this.#chunkLeft -= n;
        if (this.#chunkLeft === 0) this.#chunk = 'data-end';
        this.sink.body(data.subarray(at, at + n));
        return at + n;
      }
      default: {
        const eol = data.indexOf(10, at);
        const end = eol === -1 ? data.length : eol + 1;
        this.#line += data.toString('latin1', at, end);
        if (this.#line.length > MAX_CHUNK_LINE) throw new ResponseParseError('a chunk line too long');
        if (eol !== -1) this.#chunkLine(this.#line);
        return end;
      }
    }
  }

  #chunkLine(raw: string): void {
    this.#line = '';
    if (!raw.endsWith('\r\n')) throw new ResponseParseError('a chunk line not ended by CRLF');
    const line = raw.slice(0, -2);
    if (this.#chunk === 'data-end') {
      if (line !== '') throw new ResponseParseError('chunk data longer than its size');
      this.#chunk = 'size';
    } else if (this.#chunk === 'size') {
      const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(line);
      if (size === null) throw new ResponseParseError('a malformed chunk size');
      this.#chunkLeft = parseInt(size[1]!, 16);
      this.#chunk = this.#chunkLeft === 0 ? 'trailer' : 'data';
    } else if (line === '') this.#done = true;
    else if ((this.#trailerBytes += raw.length) > MAX_TRAILERS || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\0\r\n]*$/.test(line)) {
      throw new ResponseParseError('a malformed or oversized trailer');
    }
  }
}

/** A reason phrase's byte: tab, printable ASCII, or past 0x7f (no control character, no DEL). */
const isReasonByte = (c: number): boolean => c === 9 || (c >= 0x20 && c !== 0x7f);

/**
 * The status line `bytes[0..end)` read as `HTTP/1.<0|1> <3 digits>[ <reason>]`, the reason
 * without control characters: its minor version, or -1 when it is not such a line.
 */
function statusLine(bytes: Buffer, end: number): number {
  if (end < 12 || (end > 12 && bytes[12] !== 32)) return -1;
  // "HTTP/1."
  if (bytes[0] !== 72 || bytes[1] !== 84 || bytes[2] !== 84 || bytes[3] !== 80 || bytes[4] !== 47 || bytes[5] !== 49 || bytes[6] !== 46) return -1;
  const minor = bytes[7]! - 48;
  if ((minor !== 0 && minor !== 1) || bytes[8] !== 32) return -1;
  for (let i = 9; i < 12; i++) if (bytes[i]! < 48 || bytes[i]! > 57) return -1;
  for (let i = 13; i < end; i++) if (!isReasonByte(bytes[i]!)) return -1;
  return minor;
}

/** `bytes[from..to)` is 1 to `max` ASCII digits. */
function digitsAt(bytes: Buffer, from: number, to: number, max: number): boolean {
  if (to <= from || to - from > max) return false;
  for (let i = from; i < to; i++) if (bytes[i]! < 48 || bytes[i]! > 57) return false;
  return true;
}
