import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import https from 'node:https';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from '../support/http-client.js';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { freePort } from '../support/servers.js';
import { Skopeo } from '../support/skopeo.js';
import { makeTempDir } from '../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const demoDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('harbor-lb-demo-'));

/** Starts the demo as a user does and resolves once its banner is out; stop() is Ctrl-C. */
async function startDemoProcess(cmd: string, args: string[]): Promise<{ banner: string; said: (text: string) => Promise<void>; stop: () => Promise<{ code: number | null; cleanedUp: boolean }> }> {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let err = '';
  const said = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => err.includes(text) && resolve();
      child.stderr.on('data', check);
      child.stderr.once('end', () => resolve());
      check();
    });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  await Promise.race([said('Ctrl-C stops everything'), exited.then((code) => Promise.reject(new Error(`demo exited (${code}) before it was up:\n${err}`)))]);
  let stopping: Promise<{ code: number | null; cleanedUp: boolean }> | undefined;
  return {
    banner: err,
    said,
    stop: () =>
      (stopping ??= (async () => {
        process.kill(-child.pid!, 'SIGINT'); // the whole group, as a terminal's Ctrl-C does
        // The demo's own last line, written after its temporary folder is gone.
        await said('temporary data removed');
        return { code: await exited, cleanedUp: err.includes('temporary data removed') };
      })()),
  };
}

async function roundTrip(skopeo: Skopeo, host: string, image: { dir: string; layerDigests: string[] }, tag: string): Promise<void> {
  const login = await skopeo.run(['login', '--tls-verify=false', '-u', 'admin', '-p', 'Harbor12345', host]);
  assert.equal(login.code, 0, login.stderr);
  const ref = `docker://${host}/library/demo:${tag}`;
  const push = await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${image.dir}:v1`, ref]);
  assert.equal(push.code, 0, push.stderr);
  const out = skopeo.writableDir(`pull-${tag}`);
  const pull = await skopeo.run(['copy', '--src-tls-verify=false', ref, `dir:${out}`]);
  assert.equal(pull.code, 0, pull.stderr);
  for (const d of image.layerDigests) {
    const hex = d.slice(7);
    assert.ok(readFileSync(join(image.dir, 'blobs', 'sha256', hex)).equals(readFileSync(join(out, hex))), `layer ${d} differs`);
  }
}

describe('the demo', () => {
  it('npm start: a skopeo round trip through 127.0.0.1:8070 works while the misconfigured node is quarantined; Ctrl-C cleans up', { timeout: 120_000 }, async (t) => {
    const tmp = makeTempDir('demo');
    t.after(tmp.remove);
    const before = demoDirs();
    const demo = await startDemoProcess('npm', ['start', '--silent']);
    t.after(() => demo.stop());
    assert.match(demo.banner, /skopeo login --tls-verify=false -u admin -p Harbor12345 127\.0\.0\.1:8070/);
    const skopeo = new Skopeo(tmp.dir);
    // The banner's commands work as printed: log in, push the sample image it offers.
    const login = await skopeo.run(['login', '--tls-verify=false', '-u', 'admin', '-p', 'Harbor12345', '127.0.0.1:8070']);
    assert.equal(login.code, 0, login.stderr);
    const offered = /skopeo copy --dest-tls-verify=false oci:(\S+):v1 docker:\/\/127\.0\.0\.1:8070\/library\/demo:v1/.exec(demo.banner);
    assert.ok(offered, demo.banner);
    const pushOffered = await skopeo.run(['copy', '--dest-tls-verify=false', `oci:${offered[1]}:v1`, 'docker://127.0.0.1:8070/library/demo:v1']);
    assert.equal(pushOffered.code, 0, pushOffered.stderr);
    const image = makeOciImage(join(tmp.dir, 'image'), [2 * 1024 * 1024, 512 * 1024]);
    for (let i = 0; i < 3; i++) await roundTrip(skopeo, '127.0.0.1:8070', image, `r${i}`);
    // The same layers pulled again came from the blob cache: the banner line says what the nodes were spared.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no "saved the nodes" line within 15 s')), 15_000)));
    await Promise.race([demo.said('harbor-lb saved the nodes'), late]).finally(() => clearTimeout(timer));
    const status = JSON.parse((await send('http://127.0.0.1:9070/-/status')).body.toString()) as { nodes: Array<{ name: string; state: string; flags: Array<{ code: string }> }> };
    const bad = status.nodes.find((n) => n.name === 'harbor3')!;
    assert.equal(bad.state, 'quarantined');
    assert.ok(bad.flags.some((f) => f.code === 'TOKEN_SIGNED_WITH_FOREIGN_KEY'));
    const stopped = await demo.stop();
    assert.ok(stopped.cleanedUp, 'the demo says it stopped and removed its data');
    assert.deepEqual(demoDirs().filter((d) => !before.includes(d)), [], 'temporary data removed');
  });

  it('harbor-lb demo --tls: HTTPS with a certificate clients can verify, and the docker commands that work with it', { timeout: 120_000 }, async (t) => {
    const tmp = makeTempDir('demo-tls');
    t.after(tmp.remove);
    const [port, adminPort] = [await freePort(), await freePort()];
    const demo = await startDemoProcess(process.execPath, [join(ROOT, 'dist/src/cli.js'), 'demo', '--tls', '--no-faults', '--nodes', '2', '--port', String(port), '--admin-port', String(adminPort)]);
    t.after(() => demo.stop());
    const cert = /the certificate: (\S+\.crt)/.exec(demo.banner)?.[1];
    assert.ok(cert, demo.banner);
    assert.match(demo.banner, new RegExp(`docker login -u admin 127\\.0\\.0\\.1:${port}`));
    assert.match(demo.banner, new RegExp(`/etc/docker/certs\\.d/127\\.0\\.0\\.1:${port}/ca\\.crt`));
    // Verified TLS with the printed certificate: the registry's 401 challenge, realm on https.
    const answer = await new Promise<{ status: number; realm: string }>((resolve, reject) => {
      https
        .get(`https://127.0.0.1:${port}/v2/`, { ca: readFileSync(cert), agent: false }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, realm: String(res.headers['www-authenticate']) });
        })
        .on('error', reject);
    });
    assert.equal(answer.status, 401);
    assert.match(answer.realm, new RegExp(`realm="https://127\\.0\\.0\\.1:${port}/service/token"`));
    const skopeo = new Skopeo(tmp.dir);
    await roundTrip(skopeo, `127.0.0.1:${port}`, makeOciImage(join(tmp.dir, 'image'), [256 * 1024]), 'v1');
    assert.deepEqual(await demo.stop(), { code: 0, cleanedUp: true });
  });

  it('harbor-lb demo --no-faults --nodes 2 --port P: no node is flagged and clients work', { timeout: 120_000 }, async (t) => {
    const tmp = makeTempDir('demo-nofaults');
    t.after(tmp.remove);
    const [port, adminPort] = [await freePort(), await freePort()];
    const cli = join(ROOT, 'dist/src/cli.js');
    const demo = await startDemoProcess(process.execPath, [cli, 'demo', '--no-faults', '--nodes', '2', '--port', String(port), '--admin-port', String(adminPort)]);
    t.after(() => demo.stop());
    const skopeo = new Skopeo(tmp.dir);
    await roundTrip(skopeo, `127.0.0.1:${port}`, makeOciImage(join(tmp.dir, 'image'), [1024 * 1024]), 'v1');
    const status = JSON.parse((await send(`http://127.0.0.1:${adminPort}/-/status`)).body.toString()) as { nodes: Array<{ state: string; flags: unknown[] }> };
    assert.equal(status.nodes.length, 2);
    for (const n of status.nodes) {
      assert.deepEqual(n.flags, []);
      assert.notEqual(n.state, 'quarantined');
    }
    assert.deepEqual(await demo.stop(), { code: 0, cleanedUp: true });
  });
});
