import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface OciImage {
  dir: string;
  tag: string;
  manifestDigest: string;
  layerDigests: string[];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The 512-byte ustar header of one regular file of `size` bytes (tests stream large layers after it). */
export function ustarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(size.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148); // checksum field counts as spaces while summing
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return header;
}

/** What follows a file's content: padding to a whole block, then the two zero blocks that end the archive. */
export function ustarTrailer(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512 + 1024);
}

/** One file in a POSIX ustar archive: the smallest valid image layer. */
function tarOneFile(name: string, content: Buffer): Buffer {
  return Buffer.concat([ustarHeader(name, content.length), content, ustarTrailer(content.length)]);
}

/**
 * Writes an OCI image layout (what `skopeo copy oci:DIR:TAG` reads) with `layerSizes` random
 * layers, incompressible so sizes hold on the wire. The demo offers one to push; tests push many.
 */
export function makeOciImage(dir: string, layerSizes: number[], tag = 'v1'): OciImage {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(join(blobs, d), b);
    return d;
  };
  const layers = layerSizes.map((size, i) => {
    const tar = tarOneFile(`layer${i}.bin`, randomBytes(size));
    const gz = gzipSync(tar, { level: 1 });
    return { digest: put(gz), size: gz.length, diffId: sha256(tar) };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${l.diffId}`) },
    }),
  );
  const configDigest = put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${l.digest}`, size: l.size })),
    }),
  );
  const manifestDigest = put(manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifestDigest}`,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return { dir, tag, manifestDigest: `sha256:${manifestDigest}`, layerDigests: layers.map((l) => `sha256:${l.digest}`) };
}
