import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createApp } from '../../src/app.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { LogSink } from '../support/log-sink.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { freePort } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** Connections redis-server has open (the redis-cli asking included). */
async function redisClients(redis: RedisServer): Promise<number> {
  const { stdout } = await run('redis-cli', ['-p', String(redis.port), 'CLIENT', 'LIST']);
  return stdout.split('\n').filter((l) => l.startsWith('id=')).length;
}

/** Holds a loopback port, as another program would. */
async function occupy(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as net.AddressInfo).port;
}

/** Binds and releases `port`: resolves only if nothing holds it any more. */
async function assertFree(port: number): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', resolve);
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

function config(redis: RedisServer, proxyPort: number, adminPort: number, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    listen: { address: '127.0.0.1', port: proxyPort },
    admin: { address: '127.0.0.1', port: adminPort },
    nodes: [{ name: 'n1', url: 'http://127.0.0.1:1' }],
    health: { enabled: false },
    sticky: { store: 'redis', redis: { url: redis.url, timeout: '200ms' } },
    // Two request workers, whatever the machine: the control plane starts them before its admin port.
    proxy: { workers: 2 },
    ...extra,
  };
}

describe('start() is all or nothing', () => {
  it('a taken admin port rejects start() naming address:port, and frees the proxy port and the Redis connection', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const baseline = await redisClients(redis);
    const adminPort = await occupy(t);
    const proxyPort = await freePort();
    const logs = new LogSink();
    const app = createApp(validateConfig(config(redis, proxyPort, adminPort)), { logDestination: logs });
    t.after(() => app.close(0));
    // Connected before start(), so a client left open would show in CLIENT LIST.
    await logs.waitFor((l) => l.event === 'redis_connected');
    assert.equal(await redisClients(redis), baseline + 1);

    await assert.rejects(app.start(), (err: Error & { code?: string }) => {
      assert.equal(err.message, `cannot listen for the admin API (admin) on 127.0.0.1:${adminPort}: the address is already in use (EADDRINUSE)`);
      assert.equal(err.code, 'EADDRINUSE');
      return true;
    });
    await assertFree(proxyPort);
    assert.equal(await redisClients(redis), baseline, 'the Redis client is closed');
    assert.equal(app.nodes.all.length, 1);
    const failed = await logs.waitFor((l) => l.event === 'start_failed');
    assert.match(String(failed.msg), new RegExp(`127\\.0\\.0\\.1:${adminPort}`));
  });

  it('a taken client port rejects start() naming address:port, before any worker starts, and frees the admin port', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const proxyPort = await occupy(t);
    const adminPort = await freePort();
    const logs = new LogSink();
    const app = createApp(validateConfig(config(redis, proxyPort, adminPort)), { logDestination: logs });
    t.after(() => app.close(0));
    await assert.rejects(app.start(), (err: Error & { code?: string }) => {
      assert.equal(err.message, `cannot listen for client traffic (listen) on 127.0.0.1:${proxyPort}: the address is already in use (EADDRINUSE)`);
      assert.equal(err.code, 'EADDRINUSE', 'the control plane bound it itself (proxy.connectionBalance least-connections)');
      return true;
    });
    await assertFree(adminPort);
    assert.equal(logs.lines.filter((l) => l.event === 'accept_failed' || l.event === 'worker_exited').length, 0, 'a failed bind is not an accept failure, and no worker was started');
  });

  it('a listener that cannot be created (TLS files missing) closes the Redis connection too', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const baseline = await redisClients(redis);
    const logs = new LogSink();
    const app = createApp(
      validateConfig(config(redis, 0, 0, { listen: { address: '127.0.0.1', port: 0, tls: { cert: '/nonexistent/server.crt', key: '/nonexistent/server.key' } } })),
      { logDestination: logs },
    );
    t.after(() => app.close(0));
    await logs.waitFor((l) => l.event === 'redis_connected');
    await assert.rejects(app.start(), /ENOENT/);
    assert.equal(await redisClients(redis), baseline, 'the Redis client is closed');
  });

  it('harbor-lb serve with its admin port taken exits by itself, naming the address, with nothing left running', async (t) => {
    const redis = await startRedis();
    t.after(() => redis.proc.stop());
    const adminPort = await occupy(t);
    const { dir, remove } = makeTempDir('start-fails');
    t.after(remove);
    const file = join(dir, 'harbor-lb.yaml');
    const cfg = config(redis, 0, adminPort);
    writeFileSync(file, JSON.stringify({ ...cfg, log: { level: 'silent' } }));
    // The process must end on its own: a listener, Redis client or timer left open would keep it
    // alive until this bound kills it (and then `code` is not 1).
    const result = await run(process.execPath, [CLI, 'serve', '--config', file], { timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '', killed: false }),
      (err: { code?: number; stderr?: string; killed?: boolean }) => ({ code: err.code, stderr: err.stderr ?? '', killed: err.killed ?? false }),
    );
    assert.equal(result.killed, false, `harbor-lb serve did not exit by itself: ${result.stderr}`);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stderr.trim(), `harbor-lb: cannot listen for the admin API (admin) on 127.0.0.1:${adminPort}: the address is already in use (EADDRINUSE)`);
  });
});
