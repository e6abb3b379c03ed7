import { uploadOf } from '../registry/upload-path.js';

/** What kind of traffic a request is; decides affinity, retries and what is inspected. */
export type Route = 'token' | 'v2' | 'upload' | 'ui' | 'other';

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
