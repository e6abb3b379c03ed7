import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { expectingUpload } from '../support/expecting-upload.js';
import { send } from '../support/http-client.js';
import { pushBearer } from '../support/registry-token.js';
import { realClusterBehindLb } from '../support/real-cluster-behind-lb.js';

const REPO = 'library/expect';

it('a blob PUT sent as curl sends large ones (Expect: 100-continue) reaches the real registry whole; one harbor-lb refuses is answered before its body is sent', async (t) => {
  const { lb } = await realClusterBehindLb(t, 'e2e-expect', 2, { proxy: { workers: 2 } });
  const bearer = await pushBearer(lb.url, REPO);

  const blob = randomBytes(2 * 1024 * 1024 + 17);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const post = await send(`${lb.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { authorization: bearer } });
  assert.equal(post.status, 202, post.body.toString());
  const at = new URL(String(post.headers.location), lb.url);
  const put = await expectingUpload(lb.url, `${at.pathname}${at.search}&digest=${digest}`, blob, { Authorization: bearer });
  assert.match(put.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /, 'one 100 Continue, then the registry\'s 201');
  const pulled = await send(`${lb.url}/v2/${REPO}/blobs/${digest}`, { headers: { authorization: bearer } });
  assert.equal(pulled.status, 200);
  assert.ok(pulled.body.equals(blob), 'the registry has every byte');

  const refused = await expectingUpload(lb.url, `/v2/${REPO}/../other/blobs/uploads/x?digest=${digest}`, blob, { Authorization: bearer });
  assert.equal(refused.status, 400);
  assert.match(refused.text, /^HTTP\/1\.1 400 /, 'no 100 Continue before the refusal');
  assert.equal(refused.sent, 0, 'the client never sent the body');
});
