import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Http1ResponseReader, ResponseParseError } from '../../../src/nodes/http1-response.js';

interface Read {
  status?: number;
  headers?: string[];
  text?: string;
  body: Buffer[];
  /** The sink answers the head with a pause. */
  pauseOnHead?: boolean;
  reader: Http1ResponseReader;
}

function reader(method = 'GET'): Read {
  const out: Read = { body: [], reader: undefined as unknown as Http1ResponseReader };
  out.reader = new Http1ResponseReader(method, {
    head: (status, raw, text) => {
      out.status = status;
      out.headers = raw;
      out.text = text;
      return !out.pauseOnHead;
    },
    // Copied as it comes: the reader's views are only valid until the next read.
    body: (chunk) => out.body.push(Buffer.from(chunk)),
  });
  return out;
}

/** Feeds `wire` cut at the given offsets, each read into a buffer that is overwritten afterwards. */
function feedCut(r: Read, wire: Buffer, cuts: number[]): void {
  let from = 0;
  for (const to of [...cuts, wire.length]) {
    const read = Buffer.from(wire.subarray(from, to));
    r.reader.feed(read);
    read.fill(0x58);
    from = to;
  }
}

const BODY = Buffer.from('0123456789abcdef'.repeat(64));
const LENGTH_WIRE = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\nDocker-Content-Digest: sha256:abc\r\n\r\n`), BODY]);

describe('HTTP/1.1 response reader', () => {
  it('reads a head and a length-framed body cut at every offset, the blank line straddling reads included', () => {
    for (let cut = 1; cut < 90; cut++) {
      const r = reader();
      feedCut(r, LENGTH_WIRE, [cut, cut + 7]);
      assert.equal(r.status, 200, `cut at ${cut}`);
      assert.deepEqual(r.headers, ['Content-Length', String(BODY.length), 'Docker-Content-Digest', 'sha256:abc']);
      assert.deepEqual(Buffer.concat(r.body), BODY, `cut at ${cut}`);
      assert.ok(r.reader.done && r.reader.keepAlive);
    }
  });

  it('decodes a chunked body fed a byte at a time, extensions and trailers included', () => {
    const wire = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n');
    const r = reader();
    feedCut(r, wire, Array.from({ length: wire.length - 1 }, (_, i) => i + 1));
    assert.equal(Buffer.concat(r.body).toString(), 'hello, world!!!');
    assert.ok(r.reader.done && r.reader.keepAlive);
  });

  it('skips interim 1xx answers, and reads no body for HEAD, 204 and 304', () => {
    const r = reader();
    r.reader.feed(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    assert.equal(r.status, 200);
    assert.equal(Buffer.concat(r.body).toString(), 'ok');
    for (const [method, status] of [['HEAD', 200], ['GET', 204], ['GET', 304]] as const) {
      const h = reader(method);
      h.reader.feed(Buffer.from(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`));
      assert.ok(h.reader.done, `${method} ${status}`);
    }
  });

  it('reads a body without length until the node closes, and does not keep that connection', () => {
    const r = reader();
    r.reader.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\nsome'));
    r.reader.feed(Buffer.from(' bytes'));
    assert.equal(r.reader.done, false);
    assert.equal(r.reader.closed(), true);
    assert.equal(Buffer.concat(r.body).toString(), 'some bytes');
    assert.equal(r.reader.keepAlive, false);
  });

  it('does not keep a connection the node closes, or an HTTP/1.0 one', () => {
    for (const wire of ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']) {
      const r = reader();
      r.reader.feed(Buffer.from(wire));
      assert.ok(r.reader.done);
      assert.equal(r.reader.keepAlive, false, wire);
    }
  });

  it('ends a response at its length even when more bytes follow (as undici does), and does not use that connection again', () => {
    for (const wire of ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA', 'HTTP/1.1 204 No Content\r\n\r\nbody']) {
      const r = reader();
      r.reader.feed(Buffer.from(wire));
      assert.ok(r.reader.done, wire);
      assert.equal(r.reader.keepAlive, false, wire);
    }
  });

  it('stops after a head the sink paused on: the body is left for the caller to feed again', () => {
    const r = reader();
    r.pauseOnHead = true;
    const used = r.reader.feed(LENGTH_WIRE);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, [], 'no body before the sink resumes');
    assert.equal(used, LENGTH_WIRE.length - BODY.length, 'read up to the end of the head');
    assert.equal(r.reader.feed(LENGTH_WIRE.subarray(used)), BODY.length);
    assert.deepEqual(Buffer.concat(r.body), BODY);
    assert.ok(r.reader.done);
  });

  it('refuses what two parties could read differently: folded lines, odd whitespace and controls, repeated or framing-less lengths, bad chunk sizes, a huge head, a protocol switch', () => {
    const bad = [
      'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      // The same length twice: passed on, the client would read both lines (undici's parser refuses it too).
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab',
      // A length and chunked framing: the client would be told a length the body does not have.
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n',
      'HTTP/2 200\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n',
      `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
      'HTTP/1.1 200 OK\r\nContent-Length: \v1\xa0\r\n\r\na',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: \vchunked\r\n\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n',
      'HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a trailer\r\n\r\n',
    ];
    for (const wire of bad) {
      const r = reader();
      assert.throws(() => r.reader.feed(Buffer.from(wire)), (err: Error) => err instanceof ResponseParseError && err.name === 'HTTPParserError', wire.slice(0, 60));
    }
  });
});

/**
 * The header-line rules written plainly (split, regular expressions), as the reader had them
 * before it read a character at a time: each line a token name, a colon, a value of no control
 * character (tab aside) trimmed of spaces and tabs. Returns the name-value pairs, or 'refused'.
 */
function plainHeaderLines(lines: string[]): string[] | 'refused' {
  const raw: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return 'refused';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) return 'refused';
    raw.push(name, value);
  }
  return raw;
}

describe('Http1ResponseReader: header lines', () => {
  it('reads and refuses every header line as the plain rules do', () => {
    // Lines from the characters that matter: token characters, separators, blanks, controls, latin1.
    const char = fc.constantFrom('a', 'Z', '9', '-', '!', '~', ':', ' ', '\t', '\v', '\x00', '\x01', '\x7f', '\x80', '\xa0', '\xff', '"', '(', '/', '\r', '\n');
    const line = fc.oneof(
      fc.array(char, { maxLength: 12 }).map((c) => c.join('')),
      fc.tuple(fc.constantFrom('X-A', 'Server', 'ETag', 'a'), fc.array(char, { maxLength: 10 })).map(([n, v]) => `${n}:${v.join('')}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 4 }), (lines) => {
        const text = lines.join('\r\n');
        // Only lines the wire can carry: no empty line (it ends the head), none the CRLFs split differently.
        fc.pre(!lines.some((l) => l === '' || l.includes('\r\n')) && !text.includes('\r\n\r\n') && !text.endsWith('\r'));
        const expected = plainHeaderLines(text === '' ? [] : text.split('\r\n'));
        const r = reader();
        let got: string[] | 'refused';
        try {
          r.reader.feed(Buffer.from(`HTTP/1.1 200 OK\r\n${text === '' ? '' : `${text}\r\n`}Content-Length: 0\r\n\r\n`, 'latin1'));
          got = r.headers!.slice(0, -2);
        } catch (err) {
          assert.ok(err instanceof ResponseParseError);
          got = 'refused';
        }
        assert.deepEqual(got, expected);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('Http1ResponseReader: a Keep-Alive timeout hint', () => {
  it('reads the timeout in seconds as ms, where undici reads it, and none where undici reads none', () => {
    const cases: Array<[string | undefined, number | undefined]> = [
      ['timeout=5', 5000],
      ['timeout=5, max=1000', 5000],
      ['max=100, timeout=2', 2000],
      ['max=100,timeout=2', 2000],
      ['TIMEOUT=7', 7000],
      ['timeout=1.5', 1000],
      ['timeout=0', 0],
      ['timeout = 5', undefined],
      ['max=5', undefined],
      [undefined, undefined],
    ];
    for (const [value, ms] of cases) {
      const r = reader();
      r.reader.feed(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 0\r\n${value === undefined ? '' : `Keep-Alive: ${value}\r\n`}\r\n`));
      assert.equal(r.reader.keepAliveHintMs, ms, String(value));
    }
  });

  it("takes the final answer's hint, not an interim 1xx's", () => {
    const r = reader();
    r.reader.feed(Buffer.from('HTTP/1.1 100 Continue\r\nKeep-Alive: timeout=1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    assert.equal(r.status, 200);
    assert.equal(r.reader.keepAliveHintMs, undefined);
  });
});
