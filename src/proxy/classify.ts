/** What kind of traffic a request is; decides affinity, retries and what is inspected. */
export type Route = 'token' | 'v2' | 'upload' | 'ui' | 'other';

const UPLOADS = '/blobs/uploads/';

/** Classifies by path alone (no query), as Harbor's own nginx routes. */
export function classify(path: string): Route {
  if (path.startsWith('/v2/') || path === '/v2') {
    return uploadOf(path) !== undefined ? 'upload' : 'v2';
  }
  if (path.startsWith('/service/')) return path === '/service/token' || path.startsWith('/service/token/') ? 'token' : 'other';
  if (path.startsWith('/api/') || path.startsWith('/c/') || path === '/') return 'ui';
  if (path.startsWith('/chartrepo/') || path.startsWith('/v1/') || path.startsWith('/.well-known/')) return 'other';
  // Harbor's nginx sends everything else to the portal (UI static files).
  return 'ui';
}

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
