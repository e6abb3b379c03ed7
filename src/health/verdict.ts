import { ROUTES, type Route } from '../registry/route.js';

/** What one active check concluded. */
export interface CheckVerdict {
  ok: boolean;
  detail: string;
  /** Passed, but some components are down: the routes they serve are out (health.componentRoutes). */
  routesOut?: { routes: Route[]; why: string };
  /** Nothing listens (connection refused): the node is down for certain, no need to wait for more checks. */
  hard?: boolean;
  /** False when no HTTP answer came at all (refused, reset, timed out): the node does not answer. */
  reached?: boolean;
  /** The node's clock minus harbor-lb's, from the answer's Date header (±0.5 s), when it had one. */
  clockOffsetMs?: number;
  /**
   * harbor-lb could not make the check: its own resources ran short (out of file descriptors,
   * memory or local ports). The check says nothing of the node and counts neither way.
   */
  notMade?: true;
}

interface HarborHealth {
  status?: unknown;
  components?: Array<{ name?: unknown; status?: unknown; error?: unknown }>;
}

/**
 * Reads a health answer. Harbor 2.x answers 200 even when unhealthy and puts the verdict in the
 * body, per component. A failing component takes the node out of the routes it serves
 * (`componentRoutes`: registry the registry routes, core or database every route); of every
 * route, it takes the node out altogether, as a failing `required` component not mapped there
 * does. Other components are ignored (a failing jobservice must not stop pulls). Anything else
 * (Harbor 1.x /api/ping, a bare registry's /) is judged by status:
 * 2xx passes, and 401 on a /v2/ path passes too (token auth answering means the registry is up).
 */
export function judgeHealth(
  path: string,
  status: number,
  contentType: string | undefined,
  body: string,
  required: readonly string[],
  componentRoutes: Readonly<Record<string, readonly Route[]>> = {},
): CheckVerdict {
  if (status === 401 && path.startsWith('/v2')) return { ok: true, detail: 'registry answers (401, token auth)' };
  if (status < 200 || status >= 300) return { ok: false, detail: `health answered ${status}` };
  if (contentType === undefined || !contentType.includes('json')) return { ok: true, detail: `health answered ${status}` };
  let doc: HarborHealth;
  try {
    doc = JSON.parse(body) as HarborHealth;
  } catch {
    return { ok: false, detail: 'health answered malformed JSON' };
  }
  if (!Array.isArray(doc.components)) {
    if (doc.status === undefined || doc.status === 'healthy') return { ok: true, detail: `health answered ${status}` };
    return { ok: false, detail: `health status is ${String(doc.status)}` };
  }
  const failing = doc.components.filter((c) => c.status !== 'healthy');
  const routesOf = (c: (typeof failing)[number]): readonly Route[] => {
    const name = typeof c.name === 'string' ? c.name : '';
    return Object.hasOwn(componentRoutes, name) ? componentRoutes[name]! : required.includes(name) ? ROUTES : [];
  };
  const blocking = failing.filter((c) => ROUTES.every((r) => routesOf(c).includes(r)));
  const describe = (c: (typeof failing)[number]) => `${String(c.name)}: ${String(c.status)}${typeof c.error === 'string' ? ` (${c.error.slice(0, 200)})` : ''}`;
  if (blocking.length > 0) return { ok: false, detail: blocking.map(describe).join('; ') };
  const partial = failing.filter((c) => routesOf(c).length > 0);
  // A required component missing from the list is not vouched for.
  const names = new Set(doc.components.map((c) => c.name));
  const missing = required.filter((r) => !names.has(r));
  if (missing.length > 0) return { ok: false, detail: `health does not report ${missing.join(', ')}` };
  const routesOut = partial.length > 0 ? { routes: ROUTES.filter((r) => partial.some((c) => routesOf(c).includes(r))), why: partial.map(describe).join('; ') } : undefined;
  if (failing.length > 0) return { ok: true, detail: `healthy enough; failing: ${failing.map(describe).join('; ')}`, ...(routesOut ? { routesOut } : {}) };
  return { ok: true, detail: 'all components healthy' };
}
