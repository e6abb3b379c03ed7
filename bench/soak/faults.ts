import type { RealHarborCluster } from '../../test/support/real-cluster.js';
import { startRedis, type RedisServer } from '../../test/support/redis.js';
import type { FaultRecord, SoakContext } from './context.js';
import { sleep } from './user.js';

/** When each fault happens, as fractions of the run and lengths in ms (derived from the duration). */
export interface FaultPlan {
  killAt: number;
  killDownMs: number;
  stopAt: number;
  stopForMs: number;
  redisAt: number;
}

/**
 * Faults early enough that the last third of the run shows recovery: a node SIGKILLed at 15 % and
 * restarted 10 s later (1/12 of a short run), a node SIGSTOPped at 35 % for 20 s (1/6 of a run
 * under 2 minutes), Redis restarted at 60 %.
 */
export function faultPlan(durationMs: number): FaultPlan {
  const short = durationMs < 120_000;
  return {
    killAt: 0.15,
    killDownMs: short ? Math.round(durationMs / 12) : 10_000,
    stopAt: 0.35,
    stopForMs: short ? Math.round(durationMs / 6) : 20_000,
    redisAt: 0.6,
  };
}

export interface FaultTargets {
  cluster: RealHarborCluster;
  redis: { current: RedisServer };
}

/**
 * Runs the plan against the cluster; each fault is recorded in ctx.faults and the JSON lines.
 * `cleanup()` undoes a fault left half done (a SIGSTOPped registry) when the run is cut short.
 */
export function runFaults(ctx: SoakContext, t: FaultTargets, plan: FaultPlan, durationMs: number, stop: AbortSignal): { done: Promise<void>; cleanup(): void } {
  let stopped: number | undefined;
  const record = (f: FaultRecord) => {
    ctx.faults.push(f);
    return f;
  };
  const at = async (fraction: number) => {
    const wait = ctx.startedAt + fraction * durationMs - Date.now();
    if (wait > 0) await sleep(wait, stop);
  };
  const done = (async () => {
    // 1. Node h1 dies (registry SIGKILL, core gone: connections refused), then comes back on its port.
    await at(plan.killAt);
    const kill = record({ name: 'SIGKILL node h1, restart', node: 'h1', plannedAtS: (plan.killAt * durationMs) / 1000, detail: '' });
    kill.startS = ctx.t();
    ctx.emit('fault', { fault: kill.name, phase: 'start' });
    await t.cluster.kill(0);
    await sleep(plan.killDownMs, stop);
    await t.cluster.restart(0, {});
    kill.endS = ctx.t();
    kill.detail = `registry SIGKILLed and core closed at ${kill.startS} s; both back on the same port at ${kill.endS} s`;
    ctx.emit('fault', { fault: kill.name, phase: 'end' });

    // 2. Node h2's registry is frozen: connections are accepted and never answered until SIGCONT.
    await at(plan.stopAt);
    const freeze = record({ name: `SIGSTOP node h2 for ${Math.round(plan.stopForMs / 1000)} s`, node: 'h2', plannedAtS: (plan.stopAt * durationMs) / 1000, detail: '' });
    const proc = t.cluster.registries[1]!.process;
    freeze.startS = ctx.t();
    ctx.emit('fault', { fault: freeze.name, phase: 'start' });
    stopped = proc.child.pid;
    proc.kill('SIGSTOP');
    try {
      await sleep(plan.stopForMs, stop);
    } finally {
      proc.kill('SIGCONT');
      stopped = undefined;
    }
    freeze.endS = ctx.t();
    freeze.detail = `docker-registry of h2 (pid ${proc.child.pid}) SIGSTOPped at ${freeze.startS} s, SIGCONT at ${freeze.endS} s; its core kept accepting`;
    ctx.emit('fault', { fault: freeze.name, phase: 'end' });

    // 3. Redis restarts empty (no persistence): every pin is lost; both instances must reconnect.
    await at(plan.redisAt);
    const redis = record({ name: 'Redis restart', plannedAtS: (plan.redisAt * durationMs) / 1000, detail: '' });
    redis.startS = ctx.t();
    ctx.emit('fault', { fault: redis.name, phase: 'start' });
    const port = t.redis.current.port;
    await t.redis.current.proc.stop();
    const down = ctx.t();
    t.redis.current = await startRedis(port);
    redis.endS = ctx.t();
    redis.detail = `redis-server stopped (SIGTERM, no persistence) at ${down} s, started again on port ${port} at ${redis.endS} s`;
    ctx.emit('fault', { fault: redis.name, phase: 'end' });
  })();
  return {
    done: done.catch((err: Error) => {
      if (stop.aborted) return;
      ctx.emit('fault_error', { message: err.message });
      ctx.faults.push({ name: 'fault runner failed', plannedAtS: 0, startS: ctx.t(), detail: err.message });
    }),
    cleanup() {
      if (stopped !== undefined) {
        try {
          process.kill(stopped, 'SIGCONT');
        } catch {
          /* gone already */
        }
      }
    },
  };
}
