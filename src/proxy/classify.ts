import type { Route } from '../registry/route.js';
import { uploadOf } from '../registry/upload-path.js';
import { hasDotSegment, hasEncodedSlash, hasMalformedEscape, normalizePath, withSlashesDecoded } from './path-normalize.js';

export type { Route } from '../registry/route.js';

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

/** How a request path is routed: the route, the path to forward, or why it is refused. */
export type RouteDecision = { route: Route; path: string; refused?: undefined } | { route: 'other'; path: string; refused: string };

const REGISTRY_ROUTES: ReadonlySet<Route> = new Set(['v2', 'upload', 'token']);

/**
 * Routes a request path (no query) on its normalized form, which is also what goes to the node:
 * harbor-lb never classifies one string and sends another. Refused, because harbor-lb, Harbor's
 * nginx, Go's routers or a filter in front could each read them as a different request:
 * - malformed percent-escapes (nginx and Go answer 400 themselves);
 * - dot segments, literal or encoded: no registry client or browser sends them, and each layer
 *   resolves them its own way (nginx resolves, gorilla/mux and Go's ServeMux redirect);
 * - paths whose raw and normalized forms fall in different routes (`//service/token`,
 *   `/%76%32/`): a prefix rule on the raw path, anywhere, would see another request;
 * - an encoded slash that a decoding reader would route elsewhere, or anywhere in a registry
 *   path: repository names cannot hold a `%`, and nginx and distribution's router decode it into
 *   a separator while harbor-lb would read it as data. Elsewhere (UI deep links such as
 *   `/harbor/projects/1/repositories/library%2Fnginx`) it is forwarded as written.
 * Paths that normalize within their route (`/v2/library//app/manifests/1`) are forwarded normalized.
 */
export function routeOf(raw: string): RouteDecision {
  // Not origin-form (`*`, absolute-form): answered 400 by the handler before routing matters.
  if (raw.charCodeAt(0) !== 47 /* "/" */) return { route: classify(raw), path: raw };
  // What nearly every request is: no escape, no run of slashes, no segment starting with a dot.
  // Such a path is its own normalized form, so the checks below could not refuse or change it.
  if (!raw.includes('%') && !raw.includes('//') && !raw.includes('/.')) return { route: classify(raw), path: raw };
  if (hasMalformedEscape(raw)) return refuse(raw, 'the path holds a malformed percent-escape');
  if (hasDotSegment(withSlashesDecoded(raw))) return refuse(raw, 'the path holds a dot segment ("." or "..", perhaps percent-encoded)');
  const path = normalizePath(raw);
  const route = classify(path);
  if (classify(raw) !== route) return refuse(raw, `the path reads as another route once normalized (${path})`);
  if (hasEncodedSlash(path)) {
    const decoded = classify(normalizePath(withSlashesDecoded(path)));
    if (decoded !== route || REGISTRY_ROUTES.has(route) || path.startsWith('/service/')) {
      return refuse(raw, 'the path holds an encoded slash (%2F) where Harbor would read a separator');
    }
  }
  return { route, path };
}

function refuse(raw: string, reason: string): RouteDecision {
  return { route: 'other', path: raw, refused: reason };
}
