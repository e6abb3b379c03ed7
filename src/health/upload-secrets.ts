/**
 * Whether an upload begun on one node can continue on the others: the check behind
 * HTTP_SECRET_DIFFERS, run by `harbor-lb doctor` once and by the upload-secret probe while
 * harbor-lb serves. Nodes whose registries have different `http.secret` answer the continued upload
 * 404 BLOB_UPLOAD_INVALID ("invalid secret"): pushes then fail whenever their requests change node.
 */
export interface UploadAnswer {
  status: number;
  text: string;
  header(name: string): string | undefined;
}

/** One request to a node's origin, built by harbor-lb (doctor's client has this shape). */
export type UploadRequest = (origin: string, path: string, headers?: Record<string, string>, method?: string, body?: Buffer) => Promise<UploadAnswer>;

export interface UploadSecretsCheck {
  home: { name: string; origin: string };
  others: ReadonlyArray<{ name: string; origin: string }>;
  /** A user that may push to `repository`, and the token service's name. */
  credentials: { username: string; password: string };
  repository: string;
  service: string;
  request: UploadRequest;
}

export type UploadSecretsResult =
  /** The home node's token service refused the credentials: nothing could be checked. */
  | { token: 'refused'; status: number }
  /** Per other node: true, its secret differs; false, the upload continued; undefined, no verdict (it failed otherwise). */
  | { token: 'granted'; differs: Map<string, boolean | undefined> };

export async function checkUploadSecrets(c: UploadSecretsCheck): Promise<UploadSecretsResult> {
  const basic = `Basic ${Buffer.from(`${c.credentials.username}:${c.credentials.password}`).toString('base64')}`;
  const q = new URLSearchParams({ service: c.service, scope: `repository:${c.repository}:pull,push` });
  const t = await c.request(c.home.origin, `/service/token?${q.toString()}`, { authorization: basic });
  const token = t.status === 200 ? tokenOf(t.text) : undefined;
  if (token === undefined) return { token: 'refused', status: t.status };
  const auth = { authorization: `Bearer ${token}` };
  const differs = new Map<string, boolean | undefined>();
  for (const other of c.others) {
    differs.set(other.name, await continuedOn(c, other.origin, auth).catch(() => undefined));
  }
  return { token: 'granted', differs };
}

/** Begins an upload on the home node, continues it on `origin`, and cancels it. */
async function continuedOn(c: UploadSecretsCheck, origin: string, auth: Record<string, string>): Promise<boolean | undefined> {
  const started = await c.request(c.home.origin, `/v2/${c.repository}/blobs/uploads/`, auth, 'POST');
  const location = started.header('location');
  if (started.status !== 202 || !location) return undefined;
  const target = new URL(location, c.home.origin);
  const path = target.pathname + target.search;
  try {
    const patch = await c.request(origin, path, { ...auth, 'content-type': 'application/octet-stream' }, 'PATCH', Buffer.from('x'));
    if (patch.status === 404 && /BLOB_UPLOAD_INVALID/.test(patch.text)) return true;
    return patch.status === 202 ? false : undefined;
  } finally {
    await c.request(c.home.origin, path, auth, 'DELETE').catch(() => undefined);
  }
}

function tokenOf(text: string): string | undefined {
  try {
    const t = (JSON.parse(text) as { token?: unknown }).token;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}
