import assert from 'node:assert/strict';
import { it } from 'node:test';
import { formatStatusTable } from '../../../src/admin/status-table.js';
import type { StatusDocument } from '../../../src/admin/status.js';

it('harbor-lb status prints each flag with its fix, the config generation and what waits for a restart, and the blob cache', () => {
  const node = {
    name: 'h3',
    url: 'http://10.0.0.13:80',
    state: 'quarantined',
    since: '2026-12-01T00:00:00.000Z',
    why: 'token trust: TOKEN_SIGNED_WITH_FOREIGN_KEY',
    weight: 1,
    flags: [{ code: 'TOKEN_SIGNED_WITH_FOREIGN_KEY', message: 'h3 issues tokens signed with key AAAA', since: '2026-12-01T00:00:00.000Z', fix: 'copy private_key.pem and root.crt from a good node' }],
    inflight: 0,
    requests: 5,
    failures: 0,
    lastCheck: null,
    history: [],
    consecutiveFailures: 0,
    ejectedUntil: null,
    conditions: { check: 'healthy', ejected: false, quarantine: 'token trust', drained: false, reachable: true },
    clockOffsetMs: null,
    removed: false,
  };
  const doc = {
    nodes: [node],
    sticky: { store: 'memory', connected: true },
    cluster: { panic: false, degraded: null, maxEjected: 1 },
    cache: { dir: '/var/cache/harbor-lb', maxSize: 10 * 2 ** 30, size: 3 * 2 ** 29, blobs: 12 },
    workers: [
      { index: 1, pid: 11, state: 'running', requests: 40, inflight: 0, rssBytes: 100 * 2 ** 20, restarts: 0, startedAt: null, connections: 3, stalled: true },
      { index: 2, pid: 12, state: 'stopping', requests: 38, inflight: 1, rssBytes: 90 * 2 ** 20, restarts: 1, startedAt: null, connections: 2, stalled: false },
    ],
    config: { generation: 3, loadedAt: '2026-12-01T01:00:00.000Z', restartNeeded: ['listen.port'], lastReload: { at: '2026-12-01T01:05:00.000Z', ok: false, problems: ['nodes[0].url: expected an http(s) URL'] } },
  } as unknown as StatusDocument;
  const text = formatStatusTable(doc);
  assert.match(text, /^h3 TOKEN_SIGNED_WITH_FOREIGN_KEY since .*: h3 issues tokens signed with key AAAA\n {2}fix: copy private_key\.pem and root\.crt from a good node$/m);
  assert.match(text, /^config: generation 3, loaded 2026-12-01T01:00:00\.000Z; last reload REFUSED at .*: nodes\[0\]\.url: expected an http\(s\) URL$/m);
  assert.match(text, /^config: changed but waiting for a restart: listen\.port$/m);
  assert.match(text, /^blob cache: 1\.5 GiB of 10\.0 GiB, 12 blobs \(\/var\/cache\/harbor-lb\)$/m);
  assert.match(text, /^workers: 2 \(1: running \(stalled\), 40 requests, 3 connections, 100 MiB; 2: stopping, 38 requests, 2 connections, 90 MiB, restarted 1x\)$/m);
});
