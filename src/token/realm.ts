/** The realm URL of a Bearer challenge (`Bearer realm="…",service="…"`). */
export function realmOf(challenge: string | undefined): string | undefined {
  return challenge === undefined ? undefined : /realm="([^"]*)"/i.exec(challenge)?.[1];
}

/** Whether two URLs share scheme, host and port; false when either is not a URL. */
export function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin.toLowerCase() === new URL(b).origin.toLowerCase();
  } catch {
    return false;
  }
}
