/** A blob of the distribution API by digest: `/v2/<name>/blobs/<algorithm>:<hex>` (not an upload). */
const BLOB = /^\/v2\/[^?#]+\/blobs\/[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isBlobPath(path: string): boolean {
  return BLOB.test(path);
}
