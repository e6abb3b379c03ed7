import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { makeServerCert } from '../support/pki.js';
import { startProcess } from '../support/processes.js';
import { freePort, startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** The fingerprint of the certificate a TLS server presents now, verified against `ca`. */
function presented(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('harbor-lb serve: SIGHUP reloads the config file', () => {
  it('rotates the TLS certificate and adds a node without a restart; a bad file is refused and logged', async (t) => {
    const tmp = makeTempDir('sighup');
    const oldDir = join(tmp.dir, 'old');
    const newDir = join(tmp.dir, 'new');
    mkdirSync(oldDir);
    mkdirSync(newDir);
    const oldCert = makeServerCert(oldDir);
    const newCert = makeServerCert(newDir);
    const node = await startServer((_req, res) => res.end('{}'));
    const [port, adminPort] = await Promise.all([freePort(), freePort()]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const yaml = (cert: typeof oldCert, nodes: string[]) =>
      [
        `listen: {address: 127.0.0.1, port: ${port}, tls: {cert: ${cert.certFile}, key: ${cert.keyFile}}}`,
        `admin: {address: 127.0.0.1, port: ${adminPort}}`,
        'nodes:',
        ...nodes.map((u, i) => `  - {name: n${i + 1}, url: "${u}"}`),
        'health: {enabled: false}',
      ].join('\n');
    writeFileSync(file, yaml(oldCert, [node.url]));
    const proc = await startProcess('node', [CLI, 'serve', '--config', file], /"event":"listening"/);
    t.after(async () => {
      await proc.stop();
      await node.close();
      tmp.remove();
    });
    const readCa = (c: typeof oldCert) => readFileSync(c.caFile, 'utf8');
    const first = await presented(port, readCa(oldCert));

    /** Sends SIGHUP and resolves with the next reload line the process writes. */
    const hup = (): Promise<Record<string, unknown>> =>
      new Promise((resolve) => {
        const onData = (chunk: Buffer) => {
          for (const line of chunk.toString().split('\n')) {
            if (!/"event":"config_reload/.test(line)) continue;
            proc.child.stdout!.off('data', onData);
            resolve(JSON.parse(line) as Record<string, unknown>);
          }
        };
        proc.child.stdout!.on('data', onData);
        proc.kill('SIGHUP');
      });

    writeFileSync(file, yaml(newCert, [node.url, 'http://127.0.0.1:9']));
    const ok = await hup();
    assert.equal(ok.event, 'config_reloaded');
    assert.equal(ok.generation, 2);
    assert.deepEqual(ok.added, ['n2']);
    assert.deepEqual(ok.applied, ['listen.tls.cert', 'listen.tls.key', 'nodes']);
    // Each request worker takes the reload from the control plane moments after its line: a
    // connection made meanwhile may still meet the old certificate (which the new CA refuses).
    let second: string | undefined;
    for (let i = 0; i < 100 && second === undefined; i++) second = await presented(port, readCa(newCert)).catch(() => undefined);
    assert.ok(second !== undefined && second !== first, 'new connections get the new certificate');
    const status = (await (await fetch(`http://127.0.0.1:${adminPort}/-/status`)).json()) as { nodes: unknown[]; config: { generation: number } };
    assert.equal(status.nodes.length, 2);
    assert.equal(status.config.generation, 2);

    writeFileSync(file, yaml(newCert, ['ftp://nowhere']));
    const refused = await hup();
    assert.equal(refused.event, 'config_reload_failed');
    assert.equal(refused.generation, 2);
    assert.match(String((refused.problems as string[])[0]), /^nodes\[0\]\.url: /);
    assert.equal(proc.child.exitCode, null, 'still running');
    assert.equal(await presented(port, readCa(newCert)), second);
  });

  it('a SIGHUP while draining for shutdown is ignored, not fatal: the request in flight finishes and the exit is clean', async (t) => {
    const tmp = makeTempDir('sighup-stop');
    let release: (() => void) | undefined;
    let arrive!: () => void;
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    const node = await startServer((req, res) => {
      if (req.url !== '/slow') return void res.end('{}');
      arrive();
      release = () => res.end('done');
    });
    const [port, adminPort] = await Promise.all([freePort(), freePort()]);
    const file = join(tmp.dir, 'harbor-lb.yaml');
    writeFileSync(file, [`listen: {address: 127.0.0.1, port: ${port}, shutdownGrace: 60s}`, `admin: {address: 127.0.0.1, port: ${adminPort}}`, 'nodes:', `  - {name: n1, url: "${node.url}"}`, 'health: {enabled: false}'].join('\n'));
    const proc = await startProcess('node', [CLI, 'serve', '--config', file], /"event":"listening"/);
    t.after(async () => {
      await proc.stop();
      await node.close();
      tmp.remove();
    });
    const answer = fetch(`http://127.0.0.1:${port}/slow`).then(async (r) => [r.status, await r.text()]);
    await arrived;
    const exited = new Promise<number | null>((resolve) => proc.child.once('exit', (code) => resolve(code)));
    const draining = new Promise<void>((resolve) => proc.child.stdout!.on('data', (c: Buffer) => /draining_connections/.test(c.toString()) && resolve()));
    proc.kill('SIGTERM');
    await draining;
    proc.kill('SIGHUP');
    const ignored = new Promise<void>((resolve) => proc.child.stdout!.on('data', (c: Buffer) => /SIGHUP ignored/.test(c.toString()) && resolve()));
    await ignored;
    release!();
    assert.deepEqual(await answer, [200, 'done']);
    assert.equal(await exited, 0);
  });
});
