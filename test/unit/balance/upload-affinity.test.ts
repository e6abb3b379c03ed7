import assert from 'node:assert/strict';
import { it } from 'node:test';
import { UploadAffinity } from '../../../src/balance/upload-affinity.js';
import { validateConfig } from '../../../src/config/load.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { MemoryStateStore } from '../../../src/state/memory-store.js';
import { FakeClock } from '../../support/fake-clock.js';

function setup() {
  const clock = new FakeClock();
  const cfg = validateConfig({ nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }, { name: 'n2', url: 'http://127.0.0.1:2' }] });
  const nodes = new NodeSet(cfg, clock);
  return { clock, nodes, aff: new UploadAffinity(new MemoryStateStore(clock, 100), nodes, 3_600_000) };
}

it('pins an upload to the node that answered its POST, from Docker-Upload-UUID or Location', async () => {
  const { nodes, aff } = setup();
  aff.learn(nodes.get('n2')!, ['Location', 'http://hub/v2/a/blobs/uploads/ignored?_state=x', 'Docker-Upload-UUID', 'u-1']);
  aff.learn(nodes.get('n1')!, ['Location', '/v2/library/a/blobs/uploads/u-2?_state=abc']);
  assert.equal((await aff.pinned('u-1'))?.name, 'n2');
  assert.equal((await aff.pinned('u-2'))?.name, 'n1');
  assert.equal(await aff.pinned('u-3'), undefined);
});

it('never holds an upload on a node that cannot serve it, but lets a draining node finish', async () => {
  const { nodes, aff } = setup();
  const n2 = nodes.get('n2')!;
  aff.learn(n2, ['Docker-Upload-UUID', 'u-1']);
  for (const [cond, expected] of [
    [() => nodes.setState(n2, 'unhealthy', 'test'), undefined],
    [() => nodes.setState(n2, 'quarantined', 'test'), undefined],
    [() => nodes.setState(n2, 'draining', 'test'), 'n2'],
    [() => nodes.setState(n2, 'healthy', 'test'), 'n2'],
  ] as const) {
    cond();
    assert.equal((await aff.pinned('u-1'))?.name, expected, n2.state);
  }
  aff.repin('u-1', nodes.get('n1')!);
  assert.equal((await aff.pinned('u-1'))?.name, 'n1');
});

it('forgets pins after the upload TTL', async () => {
  const { clock, nodes, aff } = setup();
  aff.learn(nodes.get('n1')!, ['Docker-Upload-UUID', 'u-1']);
  await Promise.resolve();
  clock.advance(3_600_000);
  assert.equal(await aff.pinned('u-1'), undefined);
});
