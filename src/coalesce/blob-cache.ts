import { createHash, randomBytes, type Hash } from 'node:crypto';
import { close, closeSync, constants, fstatSync, futimes, linkSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, utimesSync } from 'node:fs';
import { copyFile, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/loggers.js';
import type { Clock } from '../util/clock.js';
import { spillFolderPid, type FlightReader } from './blob-flights.js';

const DIGEST = /^sha256:([a-f0-9]{64})$/;
/** A temporary file older than this is left from a process that stopped mid-copy. */
const STALE_TMP_MS = 10 * 60_000;

/** What a request worker's cache tells the control plane. */
export interface CacheShare {
  added(digest: string, size: number): void;
  verified(digest: string): void;
}

/** The cache's size as /-/status shows it. */
export interface CacheStats {
  dir: string;
  maxSize: number;
  size: number;
  blobs: number;
}

/**
 * Blobs fully read and verified, kept by digest on disk (cache.dir): `sha256/<hex>`, one file per
 * blob, least recently used out first once past maxSize. The file system is the truth that every
 * process of the host shares: a lookup opens the file, a hit sets its modification time (the
 * recency a restart and the evicting process read back), and a blob enters with a link and a
 * rename, so a file in `sha256/` is always whole. One process per host evicts: the single process,
 * or the control plane, which request workers tell of each blob they add (`share`).
 */
export class BlobCache {
  readonly #blobs: string;
  readonly #tmp: string;
  /** Blobs by hex digest, least recently used first (the evicting process's view). */
  readonly #index = new Map<string, { size: number; used: number }>();
  #size = 0;
  #seq = 0;
  #evicting: Promise<void> | undefined;
  #again = false;
  /**
   * Blobs whose bytes this process has seen match their digest (it kept them, or served one whole
   * and hashed it). Any other file (kept before a restart, by another worker, or changed on disk
   * since) is hashed as it is first served whole, and never served by Range before that.
   */
  readonly #verified = new Set<string>();
  /** Copies of blobs from another file system, one at a time (each may be gigabytes). */
  #copies: Promise<void> = Promise.resolve();
  /** Clients served from the cache, and the bytes sent them (no node read), since start. */
  readonly counts = { hits: 0, bytes: 0 };

  constructor(
    readonly dir: string,
    private maxSize: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /**
     * A request worker's cache: tells the control plane of each blob it adds (the control plane
     * evicts; this one evicts nothing) and of each it saw match, which the other workers then trust.
     */
    private readonly share?: CacheShare,
  ) {
    this.#blobs = join(dir, 'sha256');
    this.#tmp = join(dir, 'tmp');
    mkdirSync(this.#blobs, { recursive: true, mode: 0o700 });
    mkdirSync(this.#tmp, { recursive: true, mode: 0o700 });
  }

  /** Reads what a previous run kept (the evicting process): sizes and recency, oldest first; stale temporary files go. */
  async load(): Promise<void> {
    if (this.share !== undefined) return;
    const found: { hex: string; size: number; used: number }[] = [];
    for (const name of await readdir(this.#blobs)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await stat(join(this.#blobs, name)).catch(() => undefined);
      if (st?.isFile()) found.push({ hex: name, size: st.size, used: st.mtimeMs });
    }
    found.sort((a, b) => a.used - b.used);
    for (const f of found) this.#remember(f.hex, f.size, f.used);
    const now = this.clock.now();
    for (const name of await readdir(this.#tmp)) {
      const file = join(this.#tmp, name);
      const st = await stat(file).catch(() => undefined);
      if (st !== undefined && now - st.mtimeMs > STALE_TMP_MS) await unlink(file).catch(() => {});
    }
    // Spill folders go beside the cache: those of a process that is gone (a crash) go now.
    for (const name of await readdir(this.dir)) {
      const pid = spillFolderPid(name);
      if (pid !== undefined && !alive(pid)) await rm(join(this.dir, name), { recursive: true, force: true });
    }
    if (found.length > 0) this.logger.info({ event: 'cache_loaded', dir: this.dir, blobs: found.length, size: this.#size }, `blob cache ${this.dir}: ${found.length} blob(s), ${this.#size} bytes kept from before`);
    await this.#evict();
  }

  /** A new limit (reload): a smaller one evicts at once. */
  configure(maxSize: number): Promise<void> {
    this.maxSize = maxSize;
    return this.#evict();
  }

  /** Whether a blob of this size may be kept (not bigger than the whole cache). */
  fits(size: number): boolean {
    return size <= this.maxSize;
  }

  stats(): CacheStats {
    return { dir: this.dir, maxSize: this.maxSize, size: this.#size, blobs: this.#index.size };
  }

  /** The blob of this digest opened for reading, or undefined when the cache does not have it. */
  open(digest: string): CachedBlob | undefined {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex === undefined) return undefined;
    let fd: number;
    try {
      fd = openSync(join(this.#blobs, hex), 'r');
    } catch {
      return undefined;
    }
    try {
      return new CachedBlob(fd, fstatSync(fd).size, hex, this.#verified.has(hex));
    } catch {
      closeSync(fd);
      return undefined;
    }
  }

  /** The blob went to a client the registry said yes to: it is recently used (not on a mere lookup). */
  served(blob: CachedBlob): void {
    this.#touch(blob.fd, blob.hex);
  }

  /** A whole read of the blob matched its digest. */
  verified(blob: CachedBlob): void {
    this.#verified.add(blob.hex);
    this.share?.verified(`sha256:${blob.hex}`);
  }

  /** Another request worker of this host kept this blob or saw it match: this one trusts it too. */
  trust(digest: string): void {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex !== undefined) this.#verified.add(hex);
  }

  /** A blob whose bytes do not match its digest (the disk, or a hand, changed it): it goes. */
  discard(blob: CachedBlob): void {
    this.#verified.delete(blob.hex);
    this.logger.warn({ event: 'cache_blob_corrupt', dir: this.dir, digest: `sha256:${blob.hex}` }, `blob cache ${this.dir}: sha256:${blob.hex} does not match its digest; removed (the client got a cut and will pull it again)`);
    try {
      unlinkSync(join(this.#blobs, blob.hex));
    } catch {
      // Gone already.
    }
    const entry = this.#index.get(blob.hex);
    if (entry !== undefined) {
      this.#index.delete(blob.hex);
      this.#size -= entry.size;
    }
  }

  /**
   * A verified blob's file (a flight's spill file) enters the cache: linked in, or copied when it
   * is on another file system. Bigger than the whole cache, it does not.
   */
  admit(file: string, digest: string, size: number): void {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex === undefined || size > this.maxSize) return;
    // Unique on the host, whatever shares the folder (containers reuse pids).
    const tmp = join(this.#tmp, `${process.pid}-${++this.#seq}-${randomBytes(4).toString('hex')}`);
    const final = join(this.#blobs, hex);
    // Its time is its recency, on the clock hits are told by (the evicting process compares the two).
    const now = this.clock.now() / 1000;
    try {
      linkSync(file, tmp);
      utimesSync(tmp, now, now);
      renameSync(tmp, final);
      this.#verified.add(hex);
      this.#added(hex, size);
    } catch (err) {
      if (!CANNOT_LINK.has((err as NodeJS.ErrnoException).code ?? '')) return this.#failed(err, tmp);
      // coalesce.dir is on another file system (or this one cannot link): a copy, off the event
      // loop and one at a time, renamed in whole. Checked again when first served.
      this.#copies = this.#copies.then(() =>
        copyFile(file, tmp, constants.COPYFILE_EXCL)
          .then(() => utimes(tmp, now, now))
          .then(() => rename(tmp, final))
          .then(
            () => this.#added(hex, size),
            (e: unknown) => this.#failed(e, tmp),
          ),
      );
    }
  }

  /** A request worker added this blob (the evicting process hears it from the control plane). */
  added(digest: string, size: number): void {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex !== undefined) this.#added(hex, size);
  }

  #added(hex: string, size: number): void {
    if (this.share !== undefined) return this.share.added(`sha256:${hex}`, size);
    this.#remember(hex, size, this.clock.now());
    void this.#evict();
  }

  #remember(hex: string, size: number, used: number): void {
    const had = this.#index.get(hex);
    if (had !== undefined) this.#size -= had.size;
    this.#index.delete(hex);
    this.#index.set(hex, { size, used });
    this.#size += size;
  }

  #failed(err: unknown, tmp: string): void {
    // A name made by someone else is theirs to remove.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      try {
        unlinkSync(tmp);
      } catch {
        // Never made.
      }
    }
    this.logger.warn({ event: 'cache_write_failed', dir: this.dir, err }, `blob cache ${this.dir}: a verified blob could not be kept (${(err as Error).message}); pulls go on from the nodes`);
  }

  /** A hit: the file's time says so to the evicting process and to the next run; the index here too. */
  #touch(fd: number, hex: string): void {
    const now = this.clock.now();
    futimes(fd, now / 1000, now / 1000, () => {});
    const entry = this.#index.get(hex);
    if (entry !== undefined) this.#remember(hex, entry.size, now);
  }

  /** Least recently used out until the cache fits; one pass at a time, another after it if asked meanwhile. */
  #evict(): Promise<void> {
    if (this.share !== undefined || this.#size <= this.maxSize) return Promise.resolve();
    if (this.#evicting !== undefined) {
      this.#again = true;
      return this.#evicting;
    }
    this.#evicting = (async () => {
      do {
        this.#again = false;
        await this.#evictPass();
      } while (this.#again);
    })().finally(() => (this.#evicting = undefined));
    return this.#evicting;
  }

  async #evictPass(): Promise<void> {
    // Each blob is looked at once a pass: one a worker read since (its time moved) goes to the back.
    for (const [hex, entry] of [...this.#index]) {
      if (this.#size <= this.maxSize) return;
      if (this.#index.get(hex) !== entry) continue;
      const file = join(this.#blobs, hex);
      const st = await stat(file).catch(() => undefined);
      if (this.#index.get(hex) !== entry) continue;
      if (st !== undefined && st.mtimeMs > entry.used + 1) {
        this.#remember(hex, st.size, st.mtimeMs);
        continue;
      }
      // A client reading it keeps its open file; the name goes now.
      await unlink(file).catch(() => {});
      if (this.#index.get(hex) === entry) {
        this.#index.delete(hex);
        this.#size -= entry.size;
      }
    }
  }
}

/**
 * A cached blob opened for one client, read at the client's pace. Reads are synchronous, as the
 * spill files' are (and nginx's without aio): a hundred clients of one blob read it from the page
 * cache, where the thread pool's round trips cost more than the reads. A cold cache on a slow
 * disk would stall the worker's other requests for each read: keep cache.dir on a local SSD.
 * A blob not yet verified by this process is hashed as it is read whole; its last chunk is given
 * out only if the whole matched (else the read throws: the client sees a cut, never a wrong blob).
 */
export class CachedBlob implements FlightReader {
  readonly headers: string[] = [];
  readonly state = 'ok';
  /** Where this client's read ends: the blob's end, or its Range's. */
  size: number;
  #closed = false;
  #hash: Hash | undefined;
  #hashed = 0;

  constructor(
    readonly fd: number,
    /** The whole blob's size. */
    readonly blobSize: number,
    readonly hex: string,
    /** Its bytes are known to match (see BlobCache.verified). */
    readonly trusted: boolean,
  ) {
    this.size = blobSize;
  }

  /** Whole reads of a blob not yet verified are checked as they go (a Range cannot be). */
  checkWhole(): void {
    if (!this.trusted) this.#hash = createHash('sha256');
  }

  /** Whether the whole read just ended and matched its digest (the caller records it). */
  matched = false;

  read(buf: Buffer, position: number): number {
    const want = Math.min(buf.length, this.size - position);
    if (want <= 0 || this.#closed) return 0;
    const n = readSync(this.fd, buf, 0, want, position);
    // Shorter than its size (cut on disk since it was opened): a cut, not a wait for more.
    if (n === 0) throw new Error(`sha256:${this.hex} ends at ${position} of ${this.size} bytes`);
    if (this.#hash !== undefined && position === this.#hashed) {
      this.#hash.update(buf.subarray(0, n));
      this.#hashed += n;
      if (this.#hashed === this.blobSize) {
        if (this.#hash.digest('hex') !== this.hex) throw new CorruptBlob(this.hex);
        this.matched = true;
      }
    }
    return n;
  }

  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.fd, () => {});
  }

  // A whole blob on disk: nothing to wait for.
  on(): this {
    return this;
  }

  off(): this {
    return this;
  }
}

/** A cached blob whose bytes do not match its digest. */
export class CorruptBlob extends Error {
  constructor(readonly hex: string) {
    super(`sha256:${hex} does not match its digest`);
  }
}

/** Link errors that mean "this file system cannot link it here": copy instead. */
const CANNOT_LINK: ReadonlySet<string> = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

/** Whether a process with this pid exists (signal 0 checks without sending). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
