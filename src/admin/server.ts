import http from 'node:http';
import type { NodeSet } from '../nodes/node-set.js';
import { buildStatus } from './status.js';

export interface AdminDeps {
  nodes: NodeSet;
  sticky: () => { store: string; connected: boolean };
}

/** The operators' listener, never the traffic port: liveness, readiness and status. */
export function createAdminServer(deps: AdminDeps): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    switch (path) {
      case '/-/healthz':
        return json(res, 200, { status: 'ok' });
      case '/-/ready': {
        const ready = deps.nodes.available().length > 0;
        return json(res, ready ? 200 : 503, { ready });
      }
      case '/-/status':
        return json(res, 200, buildStatus(deps.nodes, deps.sticky()));
      default:
        return json(res, 404, { error: 'not found' });
    }
  });
}

function json(res: http.ServerResponse, status: number, doc: unknown): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
