/** Blob upload URLs of the distribution API, read by routing (classify) and by stickiness (affinity). */

const UPLOADS = '/blobs/uploads/';

export interface UploadRef {
  repository: string;
  /** Absent on the POST that starts an upload. */
  uuid?: string;
}

/** `/v2/<name>/blobs/uploads/` and `/v2/<name>/blobs/uploads/<uuid>`; undefined for any other path. */
export function uploadOf(path: string): UploadRef | undefined {
  const at = path.lastIndexOf(UPLOADS);
  if (at <= 4) return undefined;
  const rest = path.slice(at + UPLOADS.length);
  if (rest.includes('/')) return undefined;
  const repository = path.slice(4, at);
  return rest === '' ? { repository } : { repository, uuid: rest };
}

/** The upload id of an upload Location, relative or absolute. */
export function uploadOfLocation(location: string): string | undefined {
  try {
    return uploadOf(new URL(location, 'http://location.invalid').pathname)?.uuid;
  } catch {
    return undefined;
  }
}
