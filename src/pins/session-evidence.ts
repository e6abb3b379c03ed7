import type { SessionCookie } from './pin-key.js';

/** What a node's answer to a UI request tells about the browser's session. */
export interface SessionEvidence {
  clientIp: string;
  method: string;
  path: string;
  status: number;
  /** The session cookie the request carried (a login may keep it rather than set a new one). */
  requestSession: SessionCookie | undefined;
}
