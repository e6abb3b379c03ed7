import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/**
 * Registry storage on a directory that several nodes share (the seed's CephFS): blobs by digest,
 * uploads in progress, and per repository its tags and the media type of each manifest.
 */
export class RegistryStorage {
  constructor(private readonly root: string) {
    mkdirSync(join(root, 'blobs'), { recursive: true });
    mkdirSync(join(root, 'uploads'), { recursive: true });
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', digest.slice(7, 9), digest.slice(7));
  }

  async blobSize(digest: string): Promise<number | undefined> {
    if (!isDigest(digest)) return undefined;
    try {
      return (await fs.stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  readBlob(digest: string, start?: number, end?: number): Readable {
    return createReadStream(this.blobPath(digest), { start, end });
  }

  async startUpload(): Promise<string> {
    const uuid = randomUUID();
    await fs.writeFile(this.#uploadPath(uuid), '');
    return uuid;
  }

  async uploadSize(uuid: string): Promise<number | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(uuid)) return undefined;
    try {
      return (await fs.stat(this.#uploadPath(uuid))).size;
    } catch {
      return undefined;
    }
  }

  /** Appends a request body to an upload, streaming. */
  async append(uuid: string, body: Readable): Promise<number> {
    await pipeline(body, createWriteStream(this.#uploadPath(uuid), { flags: 'a' }));
    return (await fs.stat(this.#uploadPath(uuid))).size;
  }

  /** Moves a finished upload into place if its content has `digest`; false when it does not. */
  async commit(uuid: string, digest: string): Promise<boolean> {
    const file = this.#uploadPath(uuid);
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash);
    if (`sha256:${hash.digest('hex')}` !== digest) return false;
    const target = this.blobPath(digest);
    mkdirSync(dirname(target), { recursive: true });
    await fs.rename(file, target);
    return true;
  }

  async cancel(uuid: string): Promise<void> {
    await fs.rm(this.#uploadPath(uuid), { force: true });
  }

  async putBlob(content: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const target = this.blobPath(digest);
    mkdirSync(dirname(target), { recursive: true });
    if (!existsSync(target)) await fs.writeFile(target, content);
    return digest;
  }

  async putManifest(repo: string, digest: string, mediaType: string, tag: string | undefined): Promise<void> {
    const dir = this.#repoDir(repo);
    mkdirSync(join(dir, 'tags'), { recursive: true });
    mkdirSync(join(dir, 'manifests'), { recursive: true });
    await fs.writeFile(join(dir, 'manifests', digest.slice(7)), mediaType);
    if (tag !== undefined) await fs.writeFile(join(dir, 'tags', tag), digest);
  }

  /** The digest and media type of a manifest by tag or digest. */
  async manifest(repo: string, ref: string): Promise<{ digest: string; mediaType: string } | undefined> {
    const dir = this.#repoDir(repo);
    try {
      const digest = isDigest(ref) ? ref : (await fs.readFile(join(dir, 'tags', ref), 'utf8')).trim();
      const mediaType = await fs.readFile(join(dir, 'manifests', digest.slice(7)), 'utf8');
      return { digest, mediaType };
    } catch {
      return undefined;
    }
  }

  async tags(repo: string): Promise<string[] | undefined> {
    try {
      return (await fs.readdir(join(this.#repoDir(repo), 'tags'))).sort();
    } catch {
      return undefined;
    }
  }

  #uploadPath(uuid: string): string {
    return join(this.root, 'uploads', uuid);
  }

  #repoDir(repo: string): string {
    return join(this.root, 'repositories', ...repo.split('/'));
  }
}
