import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedHarborNode } from '../../src/demo/harbor-node.js';
import { realmSchemeMismatch } from '../../src/token/realm.js';
import { startApp } from '../support/app.js';
import { makeTokenKeyPair } from '../support/pki.js';
import { makeTempDir } from '../support/tmp.js';

describe('a realm with the public host and the wrong scheme (issue 13, harbor#3933)', () => {
  it('is told apart from a realm of another origin or of the right scheme', () => {
    assert.equal(realmSchemeMismatch('http://hub.example.com/service/token', 'https://hub.example.com'), false, 'port 80 is not port 443');
    assert.equal(realmSchemeMismatch('http://hub.example.com:8443/service/token', 'https://hub.example.com:8443'), true);
    assert.equal(realmSchemeMismatch('https://hub.example.com:8443/service/token', 'https://HUB.example.com:8443'), false);
    assert.equal(realmSchemeMismatch('http://10.0.0.1:8443/service/token', 'https://hub.example.com:8443'), false);
    assert.equal(realmSchemeMismatch('not a url', 'https://hub.example.com'), false);
  });

  it('the trust probe flags REALM_SCHEME_MISMATCH with the fix; the node is not quarantined', async (t) => {
    const tmp = makeTempDir('realm-scheme');
    t.after(tmp.remove);
    const pair = makeTokenKeyPair(tmp.dir, 'cluster');
    const nodes = await Promise.all([
      new SimulatedHarborNode({ name: 'h1', signingKey: pair.key, realm: 'https://hub.test:8443/service/token' }).start(),
      new SimulatedHarborNode({ name: 'h2', signingKey: pair.key, realm: 'http://hub.test:8443/service/token' }).start(),
    ]);
    t.after(() => Promise.all(nodes.map((n) => n.close())));
    const lb = await startApp(nodes.map((n) => n.url), { publicUrl: 'https://hub.test:8443', token: { rootCert: pair.certFile, probe: { interval: '1h' } } });
    t.after(() => lb.close());
    await lb.app.trustProbe!.round();
    const [n1, n2] = lb.app.nodes.all;
    assert.deepEqual([...n1!.flags.keys()], []);
    assert.deepEqual([...n2!.flags.keys()], ['REALM_SCHEME_MISMATCH']);
    const line = await lb.logs.waitFor((l) => l.event === 'node_flag' && l.code === 'REALM_SCHEME_MISMATCH');
    assert.match(String(line.fix), /external_url in n2's harbor\.yml to https:\/\/hub\.test:8443/);
    assert.notEqual(n2!.state, 'quarantined');
  });
});
