import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Logger } from '../log.js';
import type { NodeHealth } from '../health/node-health.js';
import type { PassiveJudge } from '../health/passive-judge.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { TokenGuard } from '../token/token-guard.js';
import { renderMetrics } from './metrics.js';
import { buildStatus } from './status.js';

export interface AdminDeps {
  nodes: NodeSet;
  health: NodeHealth;
  judge: PassiveJudge;
  sticky: () => { store: string; connected: boolean; entries?: number };
  /** When set, actions (drain, undrain) need `Authorization: Bearer <token>`. */
  token: string | undefined;
  logger: Logger;
  guard?: TokenGuard;
}

const NODE_ACTION = /^\/-\/nodes\/([^/]+)\/(drain|undrain)$/;

/** The operators' listener, never the traffic port: liveness, readiness, status and node actions. */
export function createAdminServer(deps: AdminDeps): http.Server {
  const expected = deps.token === undefined ? undefined : digest(deps.token);
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const action = NODE_ACTION.exec(path);
    if (action) {
      if (req.method !== 'POST') return json(res, 405, { error: 'use POST' });
      if (expected && !authorized(req.headers.authorization, expected)) {
        return json(res, 401, { error: 'admin token required (Authorization: Bearer <admin.token>)' });
      }
      const node = deps.nodes.get(decodeURIComponent(action[1]!));
      if (!node) return json(res, 404, { error: `no node named ${action[1]}` });
      deps.nodes.setDrained(node, action[2] === 'drain');
      deps.logger.info({ event: 'admin_action', action: action[2], node: node.name, peer: req.socket.remoteAddress }, `node ${node.name}: ${action[2]}`);
      return json(res, 200, { node: node.name, state: node.state });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    switch (path) {
      case '/-/healthz':
        return json(res, 200, { status: 'ok' });
      case '/-/ready': {
        const ready = deps.nodes.ready();
        return json(res, ready ? 200 : 503, { ready });
      }
      case '/-/status':
        return json(res, 200, buildStatus(deps.nodes, deps.health, deps.judge, deps.sticky()));
      case '/metrics': {
        const text = renderMetrics(deps.nodes, deps.judge, deps.guard);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(text) });
        return void res.end(text);
      }
      default:
        return json(res, 404, { error: 'not found' });
    }
  });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares digests in constant time, so the token's length and prefix do not leak through timing. */
function authorized(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined || !/^bearer /i.test(header)) return false;
  return timingSafeEqual(digest(header.slice(7).trim()), expected);
}

function json(res: http.ServerResponse, status: number, doc: unknown): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
