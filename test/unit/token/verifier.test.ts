import assert from 'node:assert/strict';
import { createPublicKey, createSecretKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, CompactSign, exportJWK, SignJWT } from 'jose';
import { libtrustKeyId } from '../../../src/token/libtrust.js';
import { jwkThumbprint, TrustStore } from '../../../src/token/trust-store.js';
import { MAX_TOKEN_BYTES, TokenVerifier } from '../../../src/token/verifier.js';
import { FakeClock } from '../../support/fake-clock.js';
import { makeTokenKeyPair, type TokenKeyPair } from '../../support/pki.js';
import { makeTempDir } from '../../support/tmp.js';

describe('token verifier', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let cluster: TokenKeyPair;
  let foreign: TokenKeyPair;
  let ec: TokenKeyPair;
  let clock: FakeClock;
  let verifier: TokenVerifier;
  const now = () => Math.floor(clock.now() / 1000);

  before(() => {
    tmp = makeTempDir('verifier');
    cluster = makeTokenKeyPair(tmp.dir, 'cluster');
    foreign = makeTokenKeyPair(tmp.dir, 'foreign');
    ec = makeTokenKeyPair(tmp.dir, 'ec', 'ec');
    clock = new FakeClock();
    // A rotation bundle: two certificates, both trusted.
    const trust = TrustStore.fromPem(cluster.certPem + ec.certPem);
    verifier = new TokenVerifier(trust, { issuer: 'harbor-token-issuer', audience: 'harbor-registry', leeway: 60_000 }, clock);
  });
  after(() => tmp.remove());

  const kidOf = (p: TokenKeyPair) => libtrustKeyId(createPublicKey(p.key));
  const sign = (signer: TokenKeyPair, opts: { kid?: string; alg?: string; iss?: string; aud?: string; exp?: number; nbf?: number; sub?: string; x5c?: string[]; access?: object[] } = {}) => {
    const jwt = new SignJWT({ access: opts.access ?? [] })
      .setProtectedHeader({ typ: 'JWT', alg: opts.alg ?? 'RS256', kid: opts.kid ?? kidOf(signer), ...(opts.x5c ? { x5c: opts.x5c } : {}) })
      .setIssuer(opts.iss ?? 'harbor-token-issuer')
      .setAudience(opts.aud ?? 'harbor-registry')
      .setIssuedAt(now())
      .setNotBefore(opts.nbf ?? now())
      .setExpirationTime(opts.exp ?? now() + 1800);
    if (opts.sub) jwt.setSubject(opts.sub);
    return jwt.sign(signer.key);
  };
  const problem = async (token: string) => {
    const v = await verifier.verify(token);
    return v.ok ? 'OK' : v.problem;
  };

  it('accepts a token of the cluster key, by kid, with its subject', async () => {
    const v = await verifier.verify(await sign(cluster, { sub: 'admin' }));
    assert.deepEqual(v, { ok: true, kid: kidOf(cluster), subject: 'admin', expiresAt: (now() + 1800) * 1000 });
  });

  it('accepts the second certificate of a rotation bundle (EC, ES256)', async () => {
    assert.equal(await problem(await sign(ec, { alg: 'ES256' })), 'OK');
  });

  it('names a foreign key by its kid and the trusted ones', async () => {
    const v = await verifier.verify(await sign(foreign));
    assert.equal(v.ok, false);
    assert.ok(!v.ok && v.problem === 'FOREIGN_KEY' && v.kid === kidOf(foreign));
    assert.ok(!v.ok && v.detail.includes(kidOf(cluster)));
  });

  it('rejects a token that claims the cluster kid but was signed by another key', async () => {
    assert.equal(await problem(await sign(foreign, { kid: kidOf(cluster) })), 'BAD_SIGNATURE');
  });

  it('picks the key from x5c before kid, as distribution does', async () => {
    const der = (p: TokenKeyPair) => p.certPem.replace(/-----[A-Z ]+-----|\s/g, '');
    assert.equal(await problem(await sign(cluster, { kid: 'nonsense', x5c: [der(cluster)] })), 'OK');
    assert.equal(await problem(await sign(foreign, { kid: kidOf(cluster), x5c: [der(foreign)] })), 'FOREIGN_KEY');
  });

  it('checks expiry and not-before with 60 s leeway', async () => {
    assert.equal(await problem(await sign(cluster, { exp: now() - 30 })), 'OK', 'inside the leeway');
    assert.equal(await problem(await sign(cluster, { exp: now() - 120 })), 'EXPIRED');
    assert.equal(await problem(await sign(cluster, { nbf: now() + 120 })), 'NOT_YET_VALID');
  });

  it('checks issuer and audience', async () => {
    assert.equal(await problem(await sign(cluster, { iss: 'someone-else' })), 'WRONG_ISSUER');
    assert.equal(await problem(await sign(cluster, { aud: 'another-registry' })), 'WRONG_AUDIENCE');
  });

  it("refuses alg none and an HS256 token 'signed' with the public key", async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = { iss: 'harbor-token-issuer', aud: 'harbor-registry', exp: now() + 600 };
    assert.equal(await problem(`${b64({ alg: 'none', kid: kidOf(cluster) })}.${b64(payload)}.`), 'UNSUPPORTED_ALG');
    const pubPem = createPublicKey(cluster.key).export({ type: 'spki', format: 'pem' });
    const hs = await new CompactSign(Buffer.from(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'HS256', kid: kidOf(cluster) })
      .sign(createSecretKey(Buffer.from(pubPem)));
    assert.equal(await problem(hs), 'UNSUPPORTED_ALG');
  });

  it('calls malformed and oversized tokens what they are, without throwing', async () => {
    for (const junk of ['', 'abc', 'a.b.c', '%%%.%%%.%%%', 'eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln', 'x'.repeat(17_000)]) {
      const v = await verifier.verify(junk);
      assert.equal(v.ok, false, junk.slice(0, 40));
      assert.ok(!v.ok && ['MALFORMED', 'FOREIGN_KEY'].includes(v.problem), `${junk.slice(0, 40)}: ${JSON.stringify(v)}`);
    }
    assert.equal(await problem('x'.repeat(MAX_TOKEN_BYTES + 1)), 'TOO_LARGE');
  });

  it('verifies the ~50 KB token a user asking for 190 scopes gets: size is no verdict', async () => {
    const access = Array.from({ length: 190 }, (_, i) => ({ type: 'repository', name: `library/project-${i}-${'x'.repeat(120)}`, actions: ['pull', 'push'] }));
    const token = await sign(cluster, { sub: 'admin', access });
    assert.ok(token.length > 45_000 && token.length < 60_000, `token of ${token.length} bytes`);
    assert.deepEqual({ ...(await verifier.verify(token)), expiresAt: undefined }, { ok: true, kid: kidOf(cluster), subject: 'admin', expiresAt: undefined });
  });

  it('verifies up to 1 MiB and calls anything larger TOO_LARGE', async () => {
    const access = [{ type: 'repository', name: 'library/a', actions: ['pull'] }];
    const base = await sign(cluster, { access });
    // Pad the name so the whole token lands just under the limit (base64 makes 4 bytes of 3).
    const pad = Math.floor(((MAX_TOKEN_BYTES - base.length - 16) * 3) / 4);
    const near = await sign(cluster, { access: [{ ...access[0]!, name: `library/${'a'.repeat(pad)}` }] });
    assert.ok(near.length <= MAX_TOKEN_BYTES && near.length > MAX_TOKEN_BYTES - 64, `token of ${near.length} bytes`);
    assert.equal(await problem(near), 'OK');
    const over = await sign(cluster, { access: [{ ...access[0]!, name: `library/${'a'.repeat(pad + 64)}` }] });
    assert.ok(over.length > MAX_TOKEN_BYTES);
    assert.equal(await problem(over), 'TOO_LARGE');
  });

  it('verifies a token once, then answers from the cache until the token expires', async () => {
    const token = await sign(cluster, { exp: now() + 120 });
    assert.equal(await problem(token), 'OK');
    assert.equal(await problem(token), 'OK');
    clock.advance(121_000 + 60_000);
    assert.equal(await problem(token), 'EXPIRED', 'a cached verdict does not outlive the token');
  });

  it('answers cached() from what it has verified, without verifying', async () => {
    const token = await sign(cluster, { sub: 'alice', exp: now() + 120 });
    assert.equal(verifier.cached(token), undefined, 'not verified yet');
    await verifier.verify(token);
    assert.deepEqual({ ...verifier.cached(token), expiresAt: undefined }, { ok: true, kid: kidOf(cluster), subject: 'alice', expiresAt: undefined });
    const foreignToken = await sign(foreign);
    await verifier.verify(foreignToken);
    assert.equal(verifier.cached(foreignToken)?.ok, false, 'bad verdicts are known too');
    clock.advance(121_000 + 60_000);
    assert.equal(verifier.cached(token), undefined, 'not past the token expiry');
    assert.equal(verifier.cached('x'.repeat(MAX_TOKEN_BYTES + 1)), undefined);
  });

  it('keeps at most cacheMax verdicts, evicting the least recently used', async () => {
    const small = new TokenVerifier(TrustStore.fromPem(cluster.certPem), { issuer: 'harbor-token-issuer', audience: 'harbor-registry', leeway: 60_000, cacheMax: 2 }, clock);
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((sub) => sign(cluster, { sub })));
    await small.verify(a!);
    await small.verify(b!);
    await small.verify(a!); // a used again: b is now the least recently used
    await small.verify(c!);
    assert.equal(small.cacheSize, 2);
    assert.equal(small.cached(b!), undefined, 'b evicted');
    assert.equal(small.cached(a!)?.ok, true);
    assert.equal(small.cached(c!)?.ok, true);
    // Garbage from clients churns the cache but never grows it.
    for (let i = 0; i < 50; i++) await small.verify(`garbage-${i}`);
    assert.equal(small.cacheSize, 2);
  });
});

it('reads every certificate of a root.crt bundle with its libtrust kid and RFC 7638 thumbprint', async (t) => {
  const tmp = makeTempDir('trust');
  t.after(tmp.remove);
  const a = makeTokenKeyPair(tmp.dir, 'a');
  const b = makeTokenKeyPair(tmp.dir, 'b');
  const store = TrustStore.fromPem(`${a.certPem}\n${b.certPem}`);
  assert.deepEqual(store.kids, [libtrustKeyId(createPublicKey(a.key)), libtrustKeyId(createPublicKey(b.key))]);
  assert.match(store.keys[0]!.thumbprint, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(store.keys[0]!.thumbprint, await calculateJwkThumbprint(await exportJWK(createPublicKey(a.key))), 'same as jose computes');
  const ecPair = makeTokenKeyPair(tmp.dir, 'ec', 'ec');
  assert.equal(jwkThumbprint(createPublicKey(ecPair.key)), await calculateJwkThumbprint(await exportJWK(createPublicKey(ecPair.key))));
  assert.equal(store.expiring(Date.now(), 40 * 86_400_000).length, 2, 'test certificates last 30 days');
  assert.equal(store.expiring(Date.now(), 86_400_000).length, 0);
  assert.throws(() => TrustStore.fromPem('not a certificate'), /no PEM certificate/);
});
