import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SavingsReport, savingsOf } from '../../../src/demo/savings-report.js';

const exposition = (joins: number, joinBytes: number, hits: number, hitBytes: number) =>
  [
    '# HELP harbor_lb_coalesced_requests_total x',
    '# TYPE harbor_lb_coalesced_requests_total counter',
    `harbor_lb_coalesced_requests_total ${joins}`,
    `harbor_lb_coalesced_bytes_total ${joinBytes}`,
    `harbor_lb_cache_hits_total ${hits}`,
    `harbor_lb_cache_bytes_total ${hitBytes}`,
    'harbor_lb_requests_total{route="v2",node="n1",method="GET",status_class="2xx"} 99',
  ].join('\n');

describe("the demo's savings line", () => {
  it('reads joins, cache hits and the bytes of both from /metrics', () => {
    assert.deepEqual(savingsOf(exposition(2, 2048, 3, 4096)), { joins: 2, hits: 3, bytes: 6144 });
  });

  it('says what was saved since the last look, only when something was', async () => {
    const texts = [exposition(0, 0, 0, 0), exposition(2, 2 * 1048576, 1, 1048576), exposition(2, 2 * 1048576, 1, 1048576), exposition(2, 2 * 1048576, 3, 3 * 1048576)];
    const lines: string[] = [];
    const report = new SavingsReport(async () => texts.shift()!, (l) => lines.push(l));
    for (let i = 0; i < 4; i++) await report.tick();
    assert.deepEqual(lines, [
      "harbor-lb saved the nodes 3.0 MiB of blob reads just now (1 from the blob cache, 2 joined another client's pull); 3.0 MiB since start",
      'harbor-lb saved the nodes 2.0 MiB of blob reads just now (2 from the blob cache); 5.0 MiB since start',
    ]);
  });
});
