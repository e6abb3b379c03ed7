import { createHash, randomFillSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { ustarHeader, ustarTrailer } from '../../src/demo/oci-image.js';

export interface RandomLayer {
  /** The layer as an uncompressed tar of one file, made as it is read (nothing of it is held or written). */
  stream: Readable;
  /** sha256:… of the whole tar (the layer's diff id), known once the stream has ended. */
  diffId: Promise<string>;
  /** Bytes in the tar. */
  size: number;
}

/**
 * A one-file layer of `contentBytes` random bytes: incompressible, so the gzip blob a client
 * pushes is at least as large; generated in 1 MiB chunks on demand so a GiB costs no memory.
 */
export function randomLayerTar(contentBytes: number, name = 'big.bin'): RandomLayer {
  const hash = createHash('sha256');
  let resolveDigest!: (d: string) => void;
  const diffId = new Promise<string>((resolve) => (resolveDigest = resolve));
  const chunk = 1024 * 1024;
  function* parts(): Generator<Buffer> {
    yield ustarHeader(name, contentBytes);
    for (let left = contentBytes; left > 0; left -= chunk) yield randomFillSync(Buffer.allocUnsafe(Math.min(chunk, left)));
    yield ustarTrailer(contentBytes);
  }
  const stream = Readable.from(
    (function* () {
      for (const p of parts()) {
        hash.update(p);
        yield p;
      }
      resolveDigest(`sha256:${hash.digest('hex')}`);
    })(),
    { objectMode: false },
  );
  return { stream, diffId, size: 512 + contentBytes + ustarTrailer(contentBytes).length };
}
