import { createHash, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';

/** A client's read from a spill file: 64 KiB at a time, into one buffer of its own. */
const READ_CHUNK = 64 * 1024;

/** What a blob pull tells the flight it leads (forward.ts calls these; see ForwardRequest.tee). */
export interface BodyTee {
  /** The node's answer head: true when the body is to be teed (a 200 with a length, no flight yet). */
  head(status: number, headers: readonly string[]): boolean;
  /** A chunk on its way to the leading client, in order. */
  data(chunk: Buffer): void;
  /** Whether the chunk of this length just passed to data() ended the body (its last byte then waits for end()). */
  last(length: number): boolean;
  /** The whole body passed: whether it matches its digest (false: every client must see a cut). */
  end(): boolean;
  /** The node's answer was cut, or the leading client left: joined clients see a cut too. */
  fail(): void;
  /** The flight this pull leads, once head() began one. */
  flight(): Flight | undefined;
  /** The pull's exchange is over (whatever it got): clients waiting for its answer stop waiting. */
  done(): void;
}

/** The headers a joining client gets: those the leading client got that describe the blob. */
const KEPT = new Set(['content-length', 'content-type', 'docker-content-digest', 'etag', 'accept-ranges', 'cache-control', 'last-modified']);

/**
 * One pull of a blob from a node whose bytes other clients share: written to a spill file as
 * they pass to the client that asked first (the leader), read back by each joined client at its
 * own pace. Memory does not grow with the number of clients nor with how slow they read; the
 * last byte becomes readable only once the whole body matched its digest, so a joined client
 * never receives a wrong blob in full.
 */
export class Flight extends EventEmitter<{ progress: []; end: [] }> {
  readonly #fd: number;
  readonly #hash: Hash;
  #written = 0;
  #state: 'open' | 'ok' | 'failed' = 'open';
  #readers = 0;
  #closed = false;

  constructor(
    readonly digest: string,
    readonly size: number,
    /** Name/value pairs for a joining client's response head. */
    readonly headers: string[],
    private readonly file: string,
    /** The flight failed, or its file is gone: no client may join it any more. */
    private readonly onOver: (f: Flight) => void,
  ) {
    super();
    this.setMaxListeners(0);
    this.#fd = openSync(file, 'w+', 0o600);
    this.#hash = createHash('sha256');
  }

  get written(): number {
    return this.#written;
  }

  get state(): 'open' | 'ok' | 'failed' {
    return this.#state;
  }

  /** Bytes a joined client may read now: all once verified, all but the last before. */
  get readable(): number {
    return this.#state === 'ok' ? this.#written : Math.min(this.#written, this.size - 1);
  }

  write(chunk: Buffer): void {
    if (this.#state !== 'open') return;
    if (this.#written + chunk.length > this.size) return this.fail();
    // Synchronous: into the page cache, and the chunk (a reused read buffer) is free when this returns.
    let off = 0;
    while (off < chunk.length) off += writeSync(this.#fd, chunk, off, chunk.length - off, this.#written + off);
    this.#hash.update(chunk);
    this.#written += chunk.length;
    this.emit('progress');
  }

  /** The leader's body ended: verified against the digest, or failed. */
  finish(): boolean {
    if (this.#state !== 'open') return this.#state === 'ok';
    const ok = this.#written === this.size && `sha256:${this.#hash.digest('hex')}` === this.digest;
    this.#state = ok ? 'ok' : 'failed';
    this.#settle();
    return ok;
  }

  fail(): void {
    if (this.#state !== 'open') return;
    this.#state = 'failed';
    this.#settle();
  }

  /** Whether a client may still join: under way, or complete and verified while its file is still there. */
  get joinable(): boolean {
    return !this.#closed && this.#state !== 'failed';
  }

  #settle(): void {
    if (this.#state === 'failed') this.onOver(this);
    this.emit('end');
    this.#maybeClose();
  }

  /** Clients reading the file now. */
  get readers(): number {
    return this.#readers;
  }

  /** A joined client starts reading (the file stays until its last reader is done). */
  attach(): void {
    this.#readers++;
  }

  detach(): void {
    this.#readers--;
    this.#maybeClose();
  }

  /** Reads into `buf` from `position`; the number of bytes read (0: nothing readable there yet). */
  read(buf: Buffer, position: number): number {
    const n = Math.min(buf.length, this.readable - position);
    return n <= 0 ? 0 : readSync(this.#fd, buf, 0, n, position);
  }

  #maybeClose(): void {
    if (this.#closed || this.#state === 'open' || this.#readers > 0) return;
    this.#closed = true;
    this.onOver(this);
    closeSync(this.#fd);
    try {
      unlinkSync(this.file);
    } catch {
      // Gone already (the folder was cleared at close).
    }
  }
}

/** The blob flights of one process, by digest, with their spill files in `dir`. */
export class BlobFlights {
  readonly #flights = new Map<string, Flight>();
  /** Pulls sent to a node and not answered yet, by digest: what arrives meanwhile waits for their answer. */
  readonly #pending = new Map<string, { settled: Promise<void>; settle: () => void }>();
  #seq = 0;
  /** Clients that joined a flight, and the bytes they were served from it (no node read), since start. */
  readonly counts = { joins: 0, bytes: 0 };

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /**
   * The flight of this digest a client may join, if any (it still has to be authorized): one under
   * way, or one complete and verified whose clients are still reading (a late client of the same
   * rollout reads the same verified copy).
   */
  current(digest: string): Flight | undefined {
    const f = this.#flights.get(digest);
    return f?.joinable === true ? f : undefined;
  }

  /**
   * The flight of this digest, waiting up to `ms` for a pull sent before and not answered yet
   * (clients of a rollout arrive together, before the first answer): undefined when none comes.
   */
  async awaitFlight(digest: string, ms: number): Promise<Flight | undefined> {
    const pending = this.#pending.get(digest);
    if (pending !== undefined && this.current(digest) === undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pending.settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
      clearTimeout(timer);
    }
    return this.current(digest);
  }

  /** A tee for a client's pull of `digest`: it becomes the flight others join, if none is under way when its 200 arrives. */
  tee(digest: string): BodyTee {
    let flight: Flight | undefined;
    let settle: (() => void) | undefined;
    if (!this.#pending.has(digest) && !this.#flights.has(digest)) {
      let resolve!: () => void;
      const settled = new Promise<void>((r) => (resolve = r));
      const entry = { settled, settle: resolve };
      this.#pending.set(digest, entry);
      settle = () => {
        if (this.#pending.get(digest) === entry) this.#pending.delete(digest);
        resolve();
      };
    }
    return {
      done: () => settle?.(),
      head: (status, headers) => {
        // Whatever this answer is, clients waiting for it go on (to join, or their own way).
        queueMicrotask(() => settle?.());
        if (status !== 200 || this.#flights.has(digest)) return false;
        const kept: string[] = [];
        let size: number | undefined;
        for (let i = 0; i < headers.length; i += 2) {
          const name = headers[i]!.toLowerCase();
          if (name === 'content-length') size = Number(headers[i + 1]);
          if (name === 'content-encoding' || name === 'transfer-encoding') return false;
          if (KEPT.has(name)) kept.push(headers[i]!, headers[i + 1]!);
        }
        if (size === undefined || !Number.isSafeInteger(size) || size <= 0) return false;
        const file = join(this.dir, `${digest.replace(/[^a-zA-Z0-9]/g, '_')}.${++this.#seq}`);
        try {
          flight = new Flight(digest, size, kept, file, (f) => {
            if (this.#flights.get(digest) === f) this.#flights.delete(digest);
          });
        } catch {
          // No spill file (disk full, folder gone): this pull goes on alone.
          return false;
        }
        this.#flights.set(digest, flight);
        return true;
      },
      data: (chunk) => flight?.write(chunk),
      last: (length) => flight !== undefined && flight.written === flight.size && length > 0,
      end: () => flight?.finish() ?? true,
      fail: () => flight?.fail(),
      flight: () => flight,
    };
  }

  /** Ends every flight (the app closes): joined clients see a cut; the folder goes. */
  close(): void {
    for (const f of [...this.#flights.values()]) f.fail();
    this.#flights.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Streams a flight's bytes from `from` to the client at the client's pace, reading the spill file
 * (so the node's read never waits for this client, nor this client for the others). Resolves
 * once the client has the whole verified blob ('ok'), the flight failed and the client was cut
 * ('failed'), or the client left ('gone'). The caller holds the flight (attach) meanwhile.
 */
export async function streamFlight(flight: Flight, res: ServerResponse, from: number, onBytes: (n: number) => void): Promise<'ok' | 'failed' | 'gone'> {
  let position = from;
  // One buffer per client, read into again once its last write is flushed: a hundred clients of
  // one layer hold a hundred buffers, whatever their pace, and churn no memory.
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  for (;;) {
    if (res.destroyed) return 'gone';
    const n = flight.read(buf, position);
    if (n > 0) {
      position += n;
      onBytes(n);
      await new Promise<void>((resolve) => res.write(buf.subarray(0, n), () => resolve()));
      continue;
    }
    if (flight.state === 'ok' && position >= flight.size) {
      res.end();
      return 'ok';
    }
    if (flight.state === 'failed') {
      // The node's answer was cut or did not match its digest: never a short or wrong blob.
      res.destroy();
      return 'failed';
    }
    await until(res, flight);
  }
}

/** Until the flight moves on, or the client leaves. */
function until(res: ServerResponse, flight: Flight): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('close', done);
      flight.off('progress', done);
      flight.off('end', done);
      resolve();
    };
    res.on('close', done);
    flight.on('progress', done);
    flight.on('end', done);
  });
}
