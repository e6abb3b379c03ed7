import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { libtrustKeyId } from '../../../src/token/libtrust.js';
import { makeTokenKeyPair } from '../../support/pki.js';
import { makeTempDir } from '../../support/tmp.js';

it('computes the libtrust key id exactly as the openssl pipeline of harbor-facts.md does, for RSA and EC keys', (t) => {
  const tmp = makeTempDir('kid');
  t.after(tmp.remove);
  for (const kind of ['rsa', 'ec'] as const) {
    const pair = makeTokenKeyPair(tmp.dir, kind, kind);
    const expected = execSync(
      `openssl x509 -in ${pair.certFile} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | head -c 30 | base32 -w0 | fold -w4 | paste -sd:`,
    )
      .toString()
      .trim();
    assert.match(expected, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    assert.equal(libtrustKeyId(createPublicKey(readFileSync(pair.certFile))), expected, kind);
  }
});
