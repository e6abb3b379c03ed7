import { createHmac, timingSafeEqual } from 'node:crypto';

export interface UploadState {
  Name: string;
  UUID: string;
  Offset: number;
  StartedAt: string;
}

/** distribution's `_state`: base64url(HMAC-SHA256(http.secret, json) + json). */
export function packState(secret: string, state: UploadState): string {
  const json = Buffer.from(JSON.stringify(state));
  const mac = createHmac('sha256', secret).update(json).digest();
  return Buffer.concat([mac, json]).toString('base64url');
}

/** The state, or undefined when it was not signed with this secret (another node's, or tampered). */
export function unpackState(secret: string, packed: string): UploadState | undefined {
  let raw: Buffer;
  try {
    raw = Buffer.from(packed, 'base64url');
  } catch {
    return undefined;
  }
  if (raw.length <= 32) return undefined;
  const mac = raw.subarray(0, 32);
  const json = raw.subarray(32);
  if (!timingSafeEqual(mac, createHmac('sha256', secret).update(json).digest())) return undefined;
  try {
    return JSON.parse(json.toString('utf8')) as UploadState;
  } catch {
    return undefined;
  }
}
