import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { validateConfig } from '../../../src/config/load.js';
import { createLoggers } from '../../../src/log/loggers.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { libtrustKeyId } from '../../../src/token/libtrust.js';
import { MAX_TOKEN_RESPONSE_BYTES, TokenGuard } from '../../../src/token/token-guard.js';
import { TrustStore } from '../../../src/token/trust-store.js';
import { MAX_TOKEN_BYTES, TokenVerifier } from '../../../src/token/verifier.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';
import { makeTokenKeyPair, type TokenKeyPair } from '../../support/pki.js';
import { makeTempDir } from '../../support/tmp.js';

describe('token guard: what a token response says about its node', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let cluster: TokenKeyPair;
  let clock: FakeClock;
  let logs: LogSink;
  let nodes: NodeSet;
  let guard: TokenGuard;
  /** The nodes the guard asked to have probed, in order. */
  let suspected: string[];

  before(() => {
    tmp = makeTempDir('guard');
    cluster = makeTokenKeyPair(tmp.dir, 'cluster');
  });
  after(() => tmp.remove());

  afterEach(() => nodes.close());

  beforeEach(async () => {
    clock = new FakeClock();
    logs = new LogSink();
    const config = validateConfig({ nodes: ['n1', 'n2', 'n3'].map((name, i) => ({ name, url: `http://127.0.0.1:${i + 1}` })) });
    nodes = new NodeSet(config, clock);
    const trust = TrustStore.fromPem(cluster.certPem);
    const verifier = new TokenVerifier(trust, { issuer: 'harbor-token-issuer', audience: 'harbor-registry', leeway: 60_000 }, clock);
    suspected = [];
    guard = new TokenGuard(nodes, verifier, trust, createLoggers({ level: 'info', format: 'json', destination: logs }).logger, clock, {
      onSuspect: (n) => suspected.push(n.name),
    });
    // n3 is known to issue good tokens, so a flag on another node would quarantine it at once.
    assert.equal((await guard.judgeTokenResponse(nodes.get('n3')!, await tokenBody(), 'traffic')).verdict, 'good');
  });

  const sign = (access: object[] = [], sub = 'admin') => {
    const now = Math.floor(clock.now() / 1000);
    return new SignJWT({ access })
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: libtrustKeyId(createPublicKey(cluster.key)) })
      .setIssuer('harbor-token-issuer')
      .setAudience('harbor-registry')
      .setSubject(sub)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 1800)
      .sign(cluster.key);
  };
  const tokenBody = async (token?: string) => {
    const t = token ?? (await sign());
    return Buffer.from(JSON.stringify({ token: t, access_token: t, expires_in: 1800, issued_at: new Date(clock.now()).toISOString() }));
  };
  const untouched = () => {
    for (const n of nodes.all) {
      assert.equal(n.flags.size, 0, `no flag on ${n.name}`);
      assert.equal(nodes.conditionsOf(n).quarantine, undefined, `${n.name} not quarantined`);
    }
  };
  const events = (name: string) => logs.lines.filter((l) => l.event === name);

  it('calls a null, array, scalar or token-less JSON body not-a-token, without throwing, counted per node', async () => {
    const n1 = nodes.get('n1')!;
    const bodies = ['null', '[]', '[{"token":"x"}]', '42', '"eyJ.a.b"', 'true', 'not json', '{}', '{"token":""}', '{"token":42}', ''];
    for (const b of bodies) {
      const judged = await guard.judgeTokenResponse(n1, Buffer.from(b), 'traffic');
      assert.equal(judged.verdict, 'not-a-token', b);
      assert.equal(judged.token, undefined);
    }
    assert.equal(guard.countsOf(n1).notAToken, bodies.length);
    assert.equal(guard.countsOf(n1).bad, 0);
    untouched();
  });

  it('logs not-a-token at most once per node per minute, saying how many it held back', async () => {
    const [n1, n2] = [nodes.get('n1')!, nodes.get('n2')!];
    for (let i = 0; i < 5; i++) await guard.judgeTokenResponse(n1, Buffer.from('null'), 'traffic');
    await guard.judgeTokenResponse(n2, Buffer.from('[]'), 'probe');
    assert.deepEqual(
      events('token_not_a_token').map((l) => [l.node, l.source, l.notLogged]),
      [
        ['n1', 'traffic', 0],
        ['n2', 'probe', 0],
      ],
    );
    clock.advance(59_999);
    await guard.judgeTokenResponse(n1, Buffer.from('null'), 'traffic');
    assert.equal(events('token_not_a_token').length, 2, 'still inside the minute');
    clock.advance(1);
    await guard.judgeTokenResponse(n1, Buffer.from('null'), 'traffic');
    assert.deepEqual(events('token_not_a_token').map((l) => l.notLogged), [0, 0, 5]);
    assert.equal(guard.countsOf(n1).notAToken, 7, 'the counter counts every one');
  });

  it('verifies a ~50 KB token of 190 scopes: good, no flag', async () => {
    const access = Array.from({ length: 190 }, (_, i) => ({ type: 'repository', name: `library/project-${i}-${'x'.repeat(120)}`, actions: ['pull', 'push'] }));
    const body = await tokenBody(await sign(access));
    assert.ok(body.length > 90_000, 'the body carries the token twice');
    const judged = await guard.judgeTokenResponse(nodes.get('n1')!, body, 'traffic');
    assert.equal(judged.verdict, 'good');
    assert.equal(guard.countsOf(nodes.get('n1')!).good, 1);
    untouched();
  });

  it('passes a token over 1 MiB as not-verified: counted, logged, no flag, no quarantine', async () => {
    const n1 = nodes.get('n1')!;
    const huge = await sign([{ type: 'repository', name: `library/${'a'.repeat(780 * 1024)}`, actions: ['pull'] }]);
    assert.ok(huge.length > MAX_TOKEN_BYTES);
    const body = await tokenBody(huge);
    assert.ok(body.length <= MAX_TOKEN_RESPONSE_BYTES, 'the response itself fits what is held');
    const judged = await guard.judgeTokenResponse(n1, body, 'traffic');
    assert.equal(judged.verdict, 'not-verified');
    assert.equal(judged.token, undefined, 'never handed on as a good token (the probe would use it)');
    assert.equal(guard.countsOf(n1).notVerified, 1);
    assert.equal(guard.countsOf(n1).bad, 0);
    untouched();
    const [line] = events('token_not_verified');
    assert.deepEqual([line?.node, line?.reason, line?.level], ['n1', 'token-too-large', 'warn']);
    assert.ok(!logs.text().includes(huge.slice(0, 40)), 'no token text in the log');
  });

  it('counts responses the forwarder could not hold, logging once per node per minute', () => {
    const [n1, n2] = [nodes.get('n1')!, nodes.get('n2')!];
    const hold1 = guard.holdFor(n1);
    assert.equal(hold1.maxBytes, MAX_TOKEN_RESPONSE_BYTES);
    assert.ok(hold1.maxBytes >= 2 * MAX_TOKEN_BYTES, 'two 1 MiB tokens fit');
    for (let i = 0; i < 100; i++) hold1.unheld('too-large', `over ${hold1.maxBytes} bytes`);
    guard.holdFor(n2).unheld('encoded', 'content-encoding gzip');
    assert.deepEqual(
      events('token_not_verified').map((l) => [l.node, l.reason, l.detail]),
      [
        ['n1', 'response-too-large', `over ${MAX_TOKEN_RESPONSE_BYTES} bytes`],
        ['n2', 'response-encoded', 'content-encoding gzip'],
      ],
    );
    assert.equal(guard.countsOf(n1).notVerified, 100);
    assert.equal(guard.countsOf(n2).notVerified, 1);
    clock.advance(60_000);
    hold1.unheld('encoded', 'content-encoding br');
    assert.equal(events('token_not_verified').at(-1)!.notLogged, 99);
    untouched();
  });

  // Found in review: a client could send a good token right at its expiry to a node whose clock
  // runs a little ahead, get 401 invalid_token, and have the node quarantined.
  it('a refusal of a good token near its expiry is no evidence against the node', async () => {
    const n1 = nodes.get('n1')!;
    const token = await sign();
    clock.advance(1800_000 - 10_000);
    assert.equal(await guard.judgeRejection(n1, token, 'traffic'), false);
    untouched();
    assert.deepEqual(suspected, []);
    const fresh = await sign();
    assert.equal(await guard.judgeRejection(n1, fresh, 'traffic'), true, 'a fresh good token refused: the request may go elsewhere');
    untouched();
    assert.deepEqual(suspected, ['n1'], 'and the node is probed');
    assert.equal(await guard.judgeRejection(n1, fresh, 'probe'), true);
    assert.ok(n1.flags.has('REGISTRY_REJECTS_CLUSTER_TOKEN'), 'the probe convicts');
  });

  // Issue 18: a client could shape a token (a made-up service a permissive token service copied
  // into the audience) or a header the registry read differently, and have healthy nodes flagged.
  it('traffic evidence never flags: a bad token or a refused good token is suspicion, counted and probed; the same from the probe flags and quarantines', async () => {
    const n1 = nodes.get('n1')!;
    const foreign = makeTokenKeyPair(tmp.dir, 'foreign-guard');
    const now = Math.floor(clock.now() / 1000);
    const wrongAudience = await new SignJWT({ access: [] })
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: libtrustKeyId(createPublicKey(cluster.key)) })
      .setIssuer('harbor-token-issuer')
      .setAudience('made-up-service')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 1800)
      .sign(cluster.key);
    const foreignSigned = await new SignJWT({ access: [] })
      .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: libtrustKeyId(createPublicKey(foreign.key)) })
      .setIssuer('harbor-token-issuer')
      .setAudience('harbor-registry')
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + 1800)
      .sign(foreign.key);
    for (let i = 0; i < 20; i++) {
      assert.equal((await guard.judgeTokenResponse(n1, await tokenBody(wrongAudience), 'traffic')).verdict, 'bad');
      assert.equal((await guard.judgeTokenResponse(n1, await tokenBody(foreignSigned), 'traffic')).verdict, 'bad');
      assert.equal(await guard.judgeRejection(n1, await sign(), 'traffic'), true);
    }
    untouched();
    assert.equal(guard.countsOf(n1).suspected, 60);
    assert.equal(guard.countsOf(n1).bad, 0, 'bad counts what the probe found');
    assert.equal(suspected.length, 60, 'each asks for a probe (the probe itself is rate-limited)');
    const lines = events('node_suspected');
    assert.deepEqual(lines.map((l) => [l.node, l.cause]), [['n1', 'token'], ['n1', 'registry']], 'logged once a minute per node and cause');
    assert.ok(!logs.text().includes(foreignSigned.slice(0, 40)), 'no token text in the log');

    assert.equal((await guard.judgeTokenResponse(n1, await tokenBody(foreignSigned), 'probe')).verdict, 'bad');
    assert.ok(n1.flags.has('TOKEN_SIGNED_WITH_FOREIGN_KEY'));
    assert.equal(nodes.conditionsOf(n1).quarantine, 'token trust: TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.equal(guard.countsOf(n1).bad, 1);
  });
});
