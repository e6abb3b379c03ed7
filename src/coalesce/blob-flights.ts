import { createHash, randomBytes, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { BlobCache } from './blob-cache.js';

/** A verified flight with no reader left stays joinable this long: a rollout's stragglers read it too. */
const LINGER_MS = 5_000;

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

/** What a client reading a flight needs of it: a flight of this process, or one another request worker leads. */
export interface FlightReader {
  readonly size: number;
  readonly headers: string[];
  readonly state: 'open' | 'ok' | 'failed';
  /** Bytes read into `buf` from `position` (0: nothing readable there yet). */
  read(buf: Buffer, position: number): number;
  detach(): void;
  on(event: 'progress' | 'end', fn: () => void): unknown;
  off(event: 'progress' | 'end', fn: () => void): unknown;
}

/** A flight as request workers tell each other of it (through the control plane): where its file is. */
export interface SharedFlight {
  digest: string;
  file: string;
  headers: string[];
  size: number;
  state: 'open' | 'ok' | 'failed';
}

/** How a request worker's flights are known to the others (workers/): one read per digest per host. */
export interface FlightBus {
  /** 'lead': no other worker reads this digest or is about to; 'elsewhere': one does (its flight is said with started()). */
  claim(digest: string): Promise<'lead' | 'elsewhere'>;
  started(flight: SharedFlight): void;
  settled(digest: string, ok: boolean): void;
  /** The claim is over: the flight's file is gone, or no flight came of it. */
  closed(digest: string): void;
}

/** A process's spill folder under `base`: named with its pid, so the folder of a process that is gone can be told. */
export function spillFolder(base: string): string {
  return join(base, `harbor-lb-flights-${process.pid}-${randomBytes(3).toString('hex')}`);
}

/** The pid in a spill folder's name (spillFolder), or undefined for any other name. */
export function spillFolderPid(name: string): number | undefined {
  const pid = /^harbor-lb-flights-(\d+)-/.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** The headers a joining client gets: those the leading client got that describe the blob. */
export const BLOB_HEADERS: ReadonlySet<string> = new Set(['content-length', 'content-type', 'docker-content-digest', 'etag', 'accept-ranges', 'cache-control', 'last-modified']);

/**
 * One pull of a blob from a node whose bytes other clients share: written to a spill file as
 * they pass to the client that asked first (the leader), read back by each joined client at its
 * own pace. Memory does not grow with the number of clients nor with how slow they read; the
 * last byte becomes readable only once the whole body matched its digest, so a joined client
 * never receives a wrong blob in full.
 */
export class Flight extends EventEmitter<{ progress: []; end: [] }> implements FlightReader {
  readonly #fd: number;
  readonly #hash: Hash;
  #written = 0;
  #state: 'open' | 'ok' | 'failed' = 'open';
  #readers = 0;
  #closed = false;
  #linger: 'no' | 'waiting' | 'done' = 'no';
  #lingerTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly digest: string,
    readonly size: number,
    /** Name/value pairs for a joining client's response head. */
    readonly headers: string[],
    private readonly file: string,
    /** The flight settled (verified or failed), or its file is gone (see joinable). */
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
    try {
      while (off < chunk.length) off += writeSync(this.#fd, chunk, off, chunk.length - off, this.#written + off);
    } catch {
      // The spill file cannot take it (disk full, I/O error): the clients that joined are cut, the
      // leading client's pull goes on alone; nothing is held against the node.
      this.spillFailed = true;
      return this.fail();
    }
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

  /** The spill file failed, not the node: the leading client's pull is not judged by this flight. */
  spillFailed = false;

  /** Other request workers were told of it (their clients may read it, uncounted in `readers`). */
  shared = false;

  /** Whether a client may still join: under way, or complete and verified while its file is still there. */
  get joinable(): boolean {
    return !this.#closed && this.#state !== 'failed';
  }

  #settle(): void {
    this.onOver(this);
    this.emit('end');
    this.#maybeClose();
  }

  /** Clients reading the file now. */
  get readers(): number {
    return this.#readers;
  }

  /** Shutdown: no more lingering; closed once its readers are done. */
  stopLingering(): void {
    clearTimeout(this.#lingerTimer);
    this.#linger = 'done';
    this.#maybeClose();
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
    if (this.#state === 'ok' && this.#linger === 'no') {
      // Verified: the late clients of the same rollout (here or in another worker) may still read it a moment.
      this.#linger = 'waiting';
      this.#lingerTimer = setTimeout(() => {
        this.#linger = 'done';
        this.#maybeClose();
      }, LINGER_MS);
      this.#lingerTimer.unref();
      return;
    }
    if (this.#linger === 'waiting') return;
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

  /** Flights other request workers lead (bus), by digest, and the clients waiting to hear of one. */
  readonly #remote = new Map<string, SharedFlight>();
  readonly #remoteWaiters = new Map<string, Set<() => void>>();
  readonly #remoteReaders = new Map<string, Set<RemoteFlight>>();
  /** Digests this worker holds the claim of (it leads, or is about to). */
  readonly #claims = new Set<string>();
  /** Pending marks made by a claim, handed to the claiming pull's tee(). */
  readonly #owned = new Map<string, () => void>();

  #made = false;

  constructor(
    private readonly dir: string,
    private readonly bus?: FlightBus,
    /** Where verified flights are kept (cache.dir), if anywhere. */
    private readonly cache?: BlobCache,
  ) {}

  /** Whether flights are shared with other request workers. */
  get shared(): boolean {
    return this.bus !== undefined;
  }

  /** Whether a pull of this digest sent from this process is waiting for its answer. */
  pendingHere(digest: string): boolean {
    return this.#pending.has(digest);
  }

  /** Asks whether this worker may lead a pull of the digest (held until the flight's file is gone). */
  async claim(digest: string): Promise<'lead' | 'elsewhere'> {
    // Pending here from the moment it is asked: this worker's other pulls of it wait, not claim too.
    const owned = this.#pend(digest);
    if (this.bus === undefined || this.#claims.has(digest)) {
      this.#owned.set(digest, owned);
      return 'lead';
    }
    const answer = await this.bus.claim(digest);
    if (answer === 'lead') {
      this.#claims.add(digest);
      this.#owned.set(digest, owned);
    } else owned();
    return answer;
  }

  /** Marks a pull of the digest pending here; the function returned ends that (waiters go on). */
  #pend(digest: string): () => void {
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    const entry = { settled, settle: resolve };
    this.#pending.set(digest, entry);
    return () => {
      if (this.#pending.get(digest) === entry) this.#pending.delete(digest);
      resolve();
    };
  }

  /** A flight another worker leads that a client here may read, waiting up to `ms` to hear of one. */
  async awaitRemote(digest: string, ms: number): Promise<RemoteFlight | undefined> {
    if (!this.#remote.has(digest)) {
      let wake!: () => void;
      const heard = new Promise<void>((resolve) => (wake = resolve));
      const waiters = this.#remoteWaiters.get(digest) ?? new Set();
      waiters.add(wake);
      this.#remoteWaiters.set(digest, waiters);
      await within(heard, ms);
      waiters.delete(wake);
      if (waiters.size === 0) this.#remoteWaiters.delete(digest);
    }
    return this.remote(digest);
  }

  /** A reader of the flight another worker leads for this digest, if there is one to read (its file opened). */
  remote(digest: string): RemoteFlight | undefined {
    const info = this.#remote.get(digest);
    if (info === undefined || info.state === 'failed') return undefined;
    let reader: RemoteFlight;
    try {
      reader = new RemoteFlight(info, (r) => {
        const readers = this.#remoteReaders.get(digest);
        readers?.delete(r);
        if (readers?.size === 0) this.#remoteReaders.delete(digest);
      });
    } catch {
      // Its file went meanwhile: the flight is over.
      return undefined;
    }
    const readers = this.#remoteReaders.get(digest) ?? new Set();
    readers.add(reader);
    this.#remoteReaders.set(digest, readers);
    return reader;
  }

  /** What the control plane says of another worker's flight: started, settled, or gone (undefined). */
  remoteUpdate(digest: string, info: SharedFlight | undefined): void {
    if (info === undefined || info.state === 'failed') this.#remote.delete(digest);
    else this.#remote.set(digest, info);
    for (const wake of this.#remoteWaiters.get(digest) ?? []) wake();
    for (const reader of this.#remoteReaders.get(digest) ?? []) {
      if (info?.state === 'ok') reader.settle(true);
      else if (info === undefined || info.state === 'failed') reader.settle(false);
    }
  }

  /** This worker's claim of the digest is over, unless another of its pulls of it is under way or about to be. */
  #release(digest: string): void {
    if (this.#pending.has(digest) || this.#current(digest) !== undefined) return;
    if (this.#claims.delete(digest)) this.bus?.closed(digest);
  }

  /**
   * The flight of this digest a client may join, if any (it still has to be authorized): one under
   * way, or one complete and verified whose clients are still reading (a late client of the same
   * rollout reads the same verified copy).
   */
  #current(digest: string): Flight | undefined {
    const f = this.#flights.get(digest);
    return f?.joinable === true ? f : undefined;
  }

  /** A reader of this process's joinable flight of the digest (attached: its file stays until the reader detaches). */
  reader(digest: string): Flight | undefined {
    const f = this.#current(digest);
    f?.attach();
    return f;
  }

  /**
   * reader(), waiting up to `ms` for a pull of this process sent before and not answered yet
   * (clients of a rollout arrive together, before the first answer): undefined when none comes.
   */
  async awaitReader(digest: string, ms: number): Promise<Flight | undefined> {
    const pending = this.#pending.get(digest);
    if (pending !== undefined && this.#current(digest) === undefined) await within(pending.settled, ms);
    return this.reader(digest);
  }

  /**
   * A tee for a client's pull of `digest`: it becomes the flight others join, if none is under way
   * when its 200 arrives (and `wanted` takes its size, when given).
   */
  tee(digest: string, wanted?: (size: number) => boolean): BodyTee {
    let flight: Flight | undefined;
    // The pending mark a claim made for this pull, or a new one when nothing of the digest is under way here.
    let settle: (() => void) | undefined = this.#owned.get(digest);
    this.#owned.delete(digest);
    if (settle === undefined && !this.#pending.has(digest) && !this.#flights.has(digest)) settle = this.#pend(digest);
    return {
      done: () => {
        settle?.();
        if (flight === undefined) this.#release(digest);
      },
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
          if (BLOB_HEADERS.has(name)) kept.push(headers[i]!, headers[i + 1]!);
        }
        if (size === undefined || !Number.isSafeInteger(size) || size <= 0 || wanted?.(size) === false) return false;
        const file = join(this.dir, `${digest.replace(/[^a-zA-Z0-9]/g, '_')}.${++this.#seq}`);
        const claimed = this.#claims.has(digest);
        try {
          // Made with the first flight: a process that never coalesces leaves no folder behind.
          if (!this.#made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
          this.#made = true;
          let said = false;
          let cached = false;
          flight = new Flight(digest, size, kept, file, (f) => {
            if (f.state === 'ok' && !cached) {
              cached = true;
              this.cache?.admit(file, digest, size);
            }
            if (!f.joinable && this.#flights.get(digest) === f) this.#flights.delete(digest);
            if (!claimed) return;
            if (!said && f.state !== 'open') {
              said = true;
              this.bus?.settled(digest, f.state === 'ok');
            }
            if (!f.joinable) this.#release(digest);
          });
        } catch {
          // No spill file (disk full, folder gone): this pull goes on alone.
          return false;
        }
        this.#flights.set(digest, flight);
        if (claimed && this.bus !== undefined) {
          flight.shared = true;
          this.bus.started({ digest, file, headers: kept, size, state: 'open' });
        }
        return true;
      },
      data: (chunk) => flight?.write(chunk),
      last: (length) => flight !== undefined && flight.written === flight.size && length > 0,
      end: () => (flight === undefined ? true : flight.finish() || flight.spillFailed),
      fail: () => flight?.fail(),
      flight: () => flight,
    };
  }

  /** Ends every flight (the app closes): joined clients see a cut; the folder goes. */
  close(): void {
    for (const f of [...this.#flights.values()]) {
      f.fail();
      f.stopLingering();
    }
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
export async function streamFlight(flight: FlightReader, res: ServerResponse, from: number, onBytes: (n: number) => void): Promise<'ok' | 'failed' | 'gone'> {
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
      await written(res, buf.subarray(0, n));
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

/**
 * Until the write is flushed, or the client leaves: a write to a socket already gone may never
 * call back (node:http drops the callback), and the client's 'close' is what ends the wait then.
 */
function written(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('close', done);
      resolve();
    };
    res.on('close', done);
    res.write(chunk, done);
  });
}

/** Until `p` settles, or `ms` have passed. */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Until the flight moves on, or the client leaves. */
function until(res: ServerResponse, flight: FlightReader): Promise<void> {
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

/**
 * A client's reader of a flight another request worker leads: the leader's spill file, opened
 * read-only, read up to what the leader has written (all but the last byte until the control
 * plane says it verified). Looked at every few milliseconds while a client waits on it.
 */
export class RemoteFlight extends EventEmitter<{ progress: []; end: [] }> implements FlightReader {
  readonly size: number;
  readonly headers: string[];
  #state: 'open' | 'ok' | 'failed';
  readonly #fd: number;
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor(
    info: SharedFlight,
    private readonly onClose: (r: RemoteFlight) => void,
  ) {
    super();
    this.size = info.size;
    this.headers = info.headers;
    this.#state = info.state;
    this.#fd = openSync(info.file, 'r');
    this.#timer = setInterval(() => this.emit('progress'), 5);
    this.#timer.unref();
  }

  get state(): 'open' | 'ok' | 'failed' {
    return this.#state;
  }

  settle(ok: boolean): void {
    if (this.#state !== 'open') return;
    this.#state = ok ? 'ok' : 'failed';
    this.emit('end');
  }

  read(buf: Buffer, position: number): number {
    if (this.#closed) return 0;
    const written = fstatSync(this.#fd).size;
    const readable = this.#state === 'ok' ? Math.min(written, this.size) : Math.min(written, this.size - 1);
    const n = Math.min(buf.length, readable - position);
    return n <= 0 ? 0 : readSync(this.#fd, buf, 0, n, position);
  }

  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    closeSync(this.#fd);
    this.onClose(this);
  }
}
