import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { ConfigError, loadConfigFile } from '../../src/config/load.js';
import { INTERMEDIATE_CIPHERS } from '../../src/config/tls-ciphers.js';
import { startFromFile } from '../support/file-app.js';
import { makeServerCert, type ServerCert } from '../support/pki.js';
import { startServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

type After = { after: (fn: () => unknown) => void };
type Handshake = { ok: true; cipher: string; version: string } | { ok: false; error: string };

/** A TLS handshake with the listener, offering what `opts` say; whether it succeeded and on what (OpenSSL cipher name). */
function handshake(port: number, cert: ServerCert, opts: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(cert.caFile), servername: 'localhost', ...opts }, () => {
      resolve({ ok: true, cipher: s.getCipher().name, version: s.getProtocol() ?? '' });
      s.end();
    });
    s.on('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

/** CBC with SHA-1 and static-RSA key exchange: in Node's default list, not in the intermediate profile. */
const OLD_CLIENT: tls.ConnectionOptions = { ciphers: 'AES128-SHA', maxVersion: 'TLSv1.2' };

/** A config file for an https listener on a free port; `tls` is added to its listen.tls. */
async function setUp(t: After, extraTls = '') {
  const tmp = makeTempDir('tls-ciphers');
  t.after(tmp.remove);
  const cert = makeServerCert(join(tmp.dir, 'pki'));
  const node = await startServer((_q, r) => r.end('ok'));
  t.after(() => node.close());
  const file = join(tmp.dir, 'harbor-lb.yaml');
  const yaml = (more: string) =>
    [
      `listen: {address: 127.0.0.1, port: 0, tls: {cert: ${cert.certFile}, key: ${cert.keyFile}${more}}}`,
      'admin: {address: 127.0.0.1, port: 0}',
      `nodes: [{name: n1, url: "${node.url}"}]`,
      'health: {enabled: false}',
      'log: {level: warn}',
    ].join('\n');
  writeFileSync(file, yaml(extraTls));
  return { cert, file, yaml };
}

describe('the TLS listener offers forward-secret AEAD suites only, unless listen.tls.ciphers says otherwise', () => {
  it("defaults to Mozilla's intermediate TLS 1.2 list: a client offering only AES128-SHA fails, a default client succeeds; a reload keeps the list", async (t) => {
    const { cert, file } = await setUp(t);
    const { app, proxyPort } = await startFromFile(file);
    t.after(() => app.close(0));

    const old = await handshake(proxyPort, cert, OLD_CLIENT);
    assert.equal(old.ok, false, `AES128-SHA must be refused: ${JSON.stringify(old)}`);
    const modern = await handshake(proxyPort, cert);
    assert.ok(modern.ok, JSON.stringify(modern));
    assert.equal(modern.version, 'TLSv1.3', 'TLS 1.3 stays on, with its default suites');
    const tls12 = await handshake(proxyPort, cert, { maxVersion: 'TLSv1.2' });
    assert.ok(tls12.ok && INTERMEDIATE_CIPHERS.split(':').includes(tls12.cipher), JSON.stringify(tls12));
    assert.equal(loadConfigFile(file).listen.tls!.ciphers, INTERMEDIATE_CIPHERS);

    // A reload installs a new secure context (renewed certificates): it must carry the same ciphers.
    const reloaded = app.reload();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    assert.equal((await handshake(proxyPort, cert, OLD_CLIENT)).ok, false, 'still refused after a reload');
    assert.ok((await handshake(proxyPort, cert)).ok);
  });

  it('honours listen.tls.ciphers at start and on reload, and refuses a string OpenSSL cannot use, naming the field', async (t) => {
    const { cert, file, yaml } = await setUp(t, ', ciphers: "AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256"');
    const { app, proxyPort } = await startFromFile(file);
    t.after(() => app.close(0));
    const old = await handshake(proxyPort, cert, OLD_CLIENT);
    assert.ok(old.ok && old.cipher === 'AES128-SHA', JSON.stringify(old));
    const only = await handshake(proxyPort, cert, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' });
    assert.equal(only.ok, false, 'a suite left out of the override is refused');

    // Start-up: the file is refused before any port is opened, naming the field.
    writeFileSync(file, yaml(', ciphers: "NO-SUCH-CIPHER"'));
    assert.throws(
      () => loadConfigFile(file),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && e.problems[0]!.startsWith('listen.tls.ciphers: expected an OpenSSL cipher string'),
    );
    // Reload: refused whole; the listener keeps the ciphers in force.
    const refused = app.reload();
    assert.ok(!refused.ok && refused.problems[0]!.startsWith('listen.tls.ciphers:'), JSON.stringify(refused));
    assert.ok((await handshake(proxyPort, cert, OLD_CLIENT)).ok);

    // A good change applies to new connections at once.
    writeFileSync(file, yaml(', ciphers: "ECDHE-RSA-AES256-GCM-SHA384"'));
    const applied = app.reload();
    assert.ok(applied.ok && applied.applied.includes('listen.tls.ciphers'), JSON.stringify(applied));
    assert.equal((await handshake(proxyPort, cert, OLD_CLIENT)).ok, false);
    const now = await handshake(proxyPort, cert, { maxVersion: 'TLSv1.2' });
    assert.ok(now.ok && now.cipher === 'ECDHE-RSA-AES256-GCM-SHA384', JSON.stringify(now));
  });
});

