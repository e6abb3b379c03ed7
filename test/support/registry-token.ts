import assert from 'node:assert/strict';
import { send } from './http-client.js';

const BASIC = `Basic ${Buffer.from('admin:Harbor12345').toString('base64')}`;

/** A push and pull token for `repo` from the token service behind `lbUrl`, as an Authorization value. */
export async function pushBearer(lbUrl: string, repo: string): Promise<string> {
  const token = await send(`${lbUrl}/service/token?service=harbor-registry&scope=${encodeURIComponent(`repository:${repo}:pull,push`)}`, { headers: { authorization: BASIC } });
  assert.equal(token.status, 200, token.body.toString());
  return `Bearer ${(JSON.parse(token.body.toString()) as { token: string }).token}`;
}
