import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { startApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startServer } from '../support/servers.js';

/**
 * Regression of issue 10: slow uploads (a trickle of body bytes) held every connection to the
 * node, and every pull waited behind them. Streamed bodies now have a connection budget of their own.
 */
describe('node connection budgets', () => {
  it('uploads that fill their budget never hold up pulls', { timeout: 20_000 }, async (t) => {
    const node = await startServer((req, res) => {
      if (req.method === 'PATCH') return void req.on('data', () => {}); // reads forever, never answers
      res.end('manifest');
    });
    t.after(() => node.close());
    // nodeShare 1: this test is about the two budgets, not about one client's share of them.
    const lb = await startApp([node.url], { proxy: { maxConnectionsPerNode: 2, maxUploadConnectionsPerNode: 2 }, limits: { nodeShare: 1 } });
    t.after(() => lb.close());
    const trickles: http.ClientRequest[] = [];
    t.after(() => trickles.forEach((r) => r.destroy()));
    let connected = 0;
    const nodeSawUploads = new Promise<void>((resolve) =>
      node.server.on('request', (req: http.IncomingMessage) => {
        if (req.method === 'PATCH' && ++connected === 2) resolve();
      }),
    );
    // Four slow uploads (twice the budget) of 10 MB at one byte at a time, kept open.
    for (let i = 0; i < 4; i++) {
      const r = http.request(`${lb.url}/v2/a/blobs/uploads/u${i}`, { method: 'PATCH', agent: false, headers: { 'content-length': 10_000_000 } });
      r.on('error', () => {});
      r.write('x');
      trickles.push(r);
    }
    await nodeSawUploads;
    for (let i = 0; i < 5; i++) assert.equal((await send(`${lb.url}/v2/a/manifests/${i}`)).status, 200, `pull ${i} is served while uploads trickle`);
  });
});
