import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { IDLE_FD_SLACK, runSoak } from '../../bench/soak/run.js';
import { makeTempDir } from '../support/tmp.js';

/**
 * The soak in its short mode (45 s): two harbor-lb processes on one Redis in front of three real
 * registries, users pushing and pulling while a node is killed and restarted, a node frozen,
 * Redis restarted, and a slow-body and a duplicate-Host client misbehave. No client may end with
 * an error it could not retry, and once the clients are gone each instance holds no more fds
 * than it did idle before the run.
 */
it('short soak: no unretryable client errors under faults, and fds back to their idle count', { timeout: 150_000 }, async (t) => {
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
});
