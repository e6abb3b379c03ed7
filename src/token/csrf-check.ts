/** One HTTP exchange as the CSRF check needs it; doctor and the trust probe each bring their own client. */
export type CsrfRequest = (
  origin: string,
  req: { method: 'GET' | 'POST'; path: string; headers: Record<string, string> },
) => Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>;

export const FLAG_CSRF = 'CSRF_KEY_DIFFERS';

/** A path under /c/ that exists nowhere: with a matching key the answer is 404, with another 403. */
const PROBE_PATH = '/c/harbor-lb-csrf-probe';

/**
 * Whether node `to` accepts a CSRF cookie and token minted by node `from` (Harbor core,
 * gorilla/csrf keyed by CSRF_KEY): a harmless unsafe request with them gets 404 when the keys
 * match and 403 "CSRF token invalid" when they differ. Undefined when `from` mints no CSRF token
 * (not Harbor 2.x) or a node cannot be asked.
 */
export async function csrfAccepts(request: CsrfRequest, from: string, to: string): Promise<boolean | undefined> {
  try {
    const minted = await request(from, { method: 'GET', path: PROBE_PATH, headers: {} });
    const token = first(minted.headers['x-harbor-csrf-token']);
    const setCookie = minted.headers['set-cookie'];
    const cookie = (Array.isArray(setCookie) ? setCookie : setCookie === undefined ? [] : [setCookie]).map((c) => /^\s*(_gorilla_csrf=[^;]+)/.exec(c)?.[1]).find((c) => c !== undefined);
    if (token === undefined || cookie === undefined) return undefined;
    const answer = await request(to, { method: 'POST', path: PROBE_PATH, headers: { cookie, 'x-harbor-csrf-token': token, 'content-length': '0' } });
    return answer.status !== 403;
  } catch {
    return undefined;
  }
}

/**
 * Groups nodes by CSRF key (each pair checked once, one direction: keys are equal or not) and
 * returns the nodes outside the largest group, each with the nodes it differs from; empty when
 * all agree or nothing could be told. With two groups of the same size, both are named.
 */
export async function csrfOutliers(request: CsrfRequest, nodes: ReadonlyArray<{ name: string; origin: string }>): Promise<Array<{ name: string; differsFrom: string[] }>> {
  const parent = nodes.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  // Only nodes some answer was had from take part: an unreachable node is no outlier.
  const known = new Set<number>();
  const pairs: Array<Promise<void>> = [];
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      pairs.push(
        csrfAccepts(request, nodes[i]!.origin, nodes[j]!.origin).then((same) => {
          if (same === undefined) return;
          known.add(i).add(j);
          if (same) parent[find(j)] = find(i);
        }),
      );
    }
  }
  await Promise.all(pairs);
  const groups = new Map<number, number[]>();
  for (const i of known) groups.set(find(i), [...(groups.get(find(i)) ?? []), i]);
  if (groups.size <= 1) return [];
  const largest = Math.max(...[...groups.values()].map((g) => g.length));
  const majority = [...groups.values()].filter((g) => g.length === largest);
  const keep = majority.length === 1 ? new Set(majority[0]) : new Set<number>();
  return [...known]
    .sort((a, b) => a - b)
    .filter((i) => !keep.has(i))
    .map((i) => ({ name: nodes[i]!.name, differsFrom: [...known].sort((a, b) => a - b).filter((k) => find(k) !== find(i)).map((k) => nodes[k]!.name) }));
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
