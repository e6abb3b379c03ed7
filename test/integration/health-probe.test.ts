import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { createHttpProbe } from '../../src/health/active-checker.js';
import { NodeSet } from '../../src/nodes/node-set.js';
import { createSystemClock } from '../../src/util/clock.js';
import { deadPort, startServer } from '../support/servers.js';

/**
 * Found by the soak: a node whose registry froze behind a live core timed out one check, was
 * taken for "does not answer", and any request the core answered flapped it back in. Only a
 * connection never made says a node does not answer; a hung one is left to unhealthyAfter.
 */
describe('the HTTP health probe', () => {
  it('reports a refused connection as not reached, a hung answer as a plain failure, and the Date offset of an answer', async (t) => {
    const hung = await startServer(() => {});
    const ahead = await startServer((_q, res) => {
      res.setHeader('date', new Date(Date.now() + 90_000).toUTCString());
      res.end('ok');
    });
    t.after(() => Promise.all([hung.close(), ahead.close()]));
    const dead = `http://127.0.0.1:${await deadPort()}`;
    const config = validateConfig({ nodes: [{ name: 'dead', url: dead }, { name: 'hung', url: hung.url }, { name: 'ahead', url: ahead.url }], health: { timeout: '300ms', path: '/' } });
    const nodes = new NodeSet(config, createSystemClock());
    const { probe, close } = createHttpProbe(config.health, nodes);
    t.after(async () => {
      await close();
      await nodes.close();
    });
    const [d, h, a] = await Promise.all(nodes.all.map((n) => probe(n)));
    assert.deepEqual([d!.ok, d!.reached, d!.hard], [false, false, true]);
    assert.equal(h!.ok, false);
    assert.notEqual(h!.reached, false, 'a node that took the connection and hung is not "does not answer"');
    assert.equal(a!.ok, true);
    assert.ok(Math.abs(a!.clockOffsetMs! - 90_000) < 1_500, String(a!.clockOffsetMs));
  });
});
