import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { HOSTILE_SHAPES } from '../../bench/soak/hostile.js';
import { formatReport, verdict } from '../../bench/soak/report.js';
import { IDLE_FD_SLACK, runSoak } from '../../bench/soak/run.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The soak in its short mode (45 s): two harbor-lb processes on one Redis in front of three real
 * registries, users pushing and pulling while a node is killed and restarted, a node frozen,
 * Redis restarted, a slow-body and a duplicate-Host client misbehave, and a hostile client sends
 * the shapes that convicted healthy nodes before issue 18. No client may end with an error it
 * could not retry; once the clients are gone each instance holds no more fds than it did idle
 * before the run; and client traffic convicted no node (issue 18): no flag raised during the
 * traffic, no node unhealthy or quarantined outside its own fault's window, no upload or session
 * pin evicted.
 */
it('short soak: no unretryable client errors under faults, fds back to their idle count, and client traffic convicted no node', { timeout: 150_000 }, async (t) => {
  const tmp = makeTempDir('soak-test');
  t.after(tmp.remove);
  const r = await runSoak({ durationMs: 45_000, users: 16, out: join(tmp.dir, 'samples.jsonl'), logPrefix: join(tmp.dir, 'soak') });
  t.diagnostic(`operations ${r.totals.ops} (${r.totals.requests} requests), retries ${r.totals.retries}: ${JSON.stringify(r.retries)}`);
  t.diagnostic(`fds idle before ${r.idleBefore.map((s) => `${s.name} ${s.fds}`).join(', ')}; after ${r.idleAfter.map((s) => `${s.name} ${s.fds}`).join(', ')}`);
  t.diagnostic(`slow-body client: ${JSON.stringify(r.slowBody)}; duplicate-Host client: ${JSON.stringify(r.duplicateHost)}`);

  assert.ok(r.totals.ops > 100, `traffic ran (${r.totals.ops} operations)`);
  assert.deepEqual(
    r.faults.map((f) => [f.name, f.endS !== undefined]),
    [
      ['SIGKILL node h1, restart', true],
      [r.faults[1]?.name ?? 'SIGSTOP', true],
      ['Redis restart', true],
    ],
    'every fault ran to its end',
  );
  assert.deepEqual(r.unretryable, [], 'no error a client could not recover from');
  for (const [i, before] of r.idleBefore.entries()) {
    const after = r.idleAfter[i]!;
    assert.ok(after.fds! <= before.fds! + IDLE_FD_SLACK, `${before.name}: ${after.fds} fds idle after the run, ${before.fds} before`);
  }
  // The misbehaving clients were answered, and only them.
  assert.ok(Object.keys(r.duplicateHost).length > 0 && Object.keys(r.duplicateHost).every((k) => k === 'HTTP 400 BAD_REQUEST'), JSON.stringify(r.duplicateHost));
  assert.ok((r.slowBody['HTTP 408 TIMEOUT'] ?? 0) >= 1, `the trickled PATCH was cut: ${JSON.stringify(r.slowBody)}`);

  // The hostile client ran: every shape was answered, harbor-lb's own refusals are 400s, and the
  // nodes answered what they answer (the registry refuses the 0xA0 bearer and the range).
  const v = verdict(r);
  t.diagnostic(`hostile client: ${JSON.stringify(r.hostile)}; what it needed: ${JSON.stringify(r.hostileSetup)}`);
  t.diagnostic(`conviction check: ${JSON.stringify(v.conviction)}`);
  t.diagnostic(`pin evictions at the end: ${JSON.stringify(r.pinEvictions)}`);
  const answered = (shape: string) => Object.keys(r.hostile[shape] ?? {}).filter((k) => k.startsWith('HTTP '));
  for (const { shape } of HOSTILE_SHAPES) assert.ok(answered(shape).length > 0, `hostile shape "${shape}" got answers: ${JSON.stringify(r.hostile[shape] ?? {})}`);
  const got = (shape: string, pattern: RegExp) => Object.entries(r.hostile[shape] ?? {}).some(([k, n]) => pattern.test(k) && n > 0);
  assert.ok(Object.keys(r.hostile['two Authorization']!).every((k) => k === 'HTTP 400 BAD_REQUEST'), JSON.stringify(r.hostile['two Authorization']));
  assert.ok(Object.keys(r.hostile['two sid values']!).every((k) => k === 'HTTP 400 BAD_REQUEST'), JSON.stringify(r.hostile['two sid values']));
  assert.ok(got('bearer + 0xA0', /^HTTP 401/), `the 0xA0 bearer reached the registry, which refused it: ${JSON.stringify(r.hostile['bearer + 0xA0'])}`);
  assert.ok(got('login flood', /^HTTP 40[01]/), `the made-up logins were refused: ${JSON.stringify(r.hostile['login flood'])}`);
  assert.ok(got('Range past the end', /^HTTP 416/), `the range past the end got 416: ${JSON.stringify(r.hostile['Range past the end'])}`);
  assert.ok(got('made-up sid', /^HTTP 200$/), `the UI answered with a made-up sid: ${JSON.stringify(r.hostile['made-up sid'])}`);
  assert.ok(got('slow read', /^HTTP 200, read whole .* digest ok$/), `a slowly read pull arrived whole: ${JSON.stringify(r.hostile['slow read'])}`);

  // Client traffic convicted no node: only the soak's own faults took nodes out, and only while they lasted.
  assert.deepEqual(v.conviction.flagsDuring, [], 'no flag raised once the traffic had started');
  assert.deepEqual(v.conviction.outside, [], `no node unhealthy or quarantined outside its own fault's window (${JSON.stringify(v.conviction.windows)})`);
  assert.ok(v.noConviction);
  // The report shows both: the hostile client's row in the Faults table, the new row in the Verdict table.
  const report = formatReport(r, 'soak-short test').split('\n');
  const hostileRow = report.find((l) => l.startsWith('| hostile client (throughout) |'));
  const verdictRow = report.find((l) => l.startsWith('| client traffic convicted no node |'));
  t.diagnostic(`report, Faults: ${hostileRow}`);
  t.diagnostic(`report, Verdict: ${verdictRow}`);
  assert.ok(hostileRow !== undefined && verdictRow?.startsWith('| client traffic convicted no node | **pass** |'), `${hostileRow}\n${verdictRow}`);
  for (const p of r.pinEvictions) {
    assert.ok(p.evictions !== undefined, `${p.name}: harbor_lb_pin_evictions_total read from /metrics`);
    assert.equal(p.evictions.upload ?? 0, 0, `${p.name}: no upload pin evicted (${JSON.stringify(p.evictions)})`);
    assert.equal(p.evictions.session ?? 0, 0, `${p.name}: no session pin evicted (${JSON.stringify(p.evictions)})`);
  }
});
