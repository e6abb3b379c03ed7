import assert from 'node:assert/strict';
import { it } from 'node:test';
import { send } from '../support/http-client.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

const flagLine = (node: string, raised: boolean) => (l: Record<string, unknown>) => l.event === 'node_flag' && l.code === 'HTTP_SECRET_DIFFERS' && l.node === node && l.raised === raised;

it("raises HTTP_SECRET_DIFFERS live on the node whose registry's http.secret differs, and clears it once fixed", async (t) => {
  const { cluster, lb } = await realClusterBehindLb(
    t,
    'e2e-secret-probe',
    3,
    { proxy: { workers: 2 }, doctor: { credentials: { username: 'admin', password: 'Harbor12345' }, uploadCheckInterval: '1s' } },
    [{}, { httpSecret: 'a-different-secret' }, {}],
  );

  const raised = await lb.logs.waitFor(flagLine('n2', true), 30_000, 'HTTP_SECRET_DIFFERS raised on n2');
  assert.match(String(raised.fix), /same registry http\.secret/);
  const status = JSON.parse((await send(`${lb.adminUrl}/-/status`)).body.toString()) as { nodes: Array<{ name: string; flags: Array<{ code: string; message: string }> }> };
  const flagged = status.nodes.filter((n) => n.flags.some((f) => f.code === 'HTTP_SECRET_DIFFERS')).map((n) => n.name);
  assert.deepEqual(flagged, ['n2'], 'only the odd node');
  assert.match(status.nodes[1]!.flags[0]!.message, /an upload started on n1 cannot continue on n2/);

  // The operator gives n2 the cluster's secret and restarts it: the next round clears the flag.
  await cluster.restart(1, {});
  await lb.logs.waitFor(flagLine('n2', false), 30_000, 'HTTP_SECRET_DIFFERS cleared on n2');
  assert.equal(lb.logs.lines.filter(flagLine('n1', true)).length + lb.logs.lines.filter(flagLine('n3', true)).length, 0);
});
