/**
 * A registry's refusal of a token's signature or claims: 401 with a Bearer challenge carrying
 * error="invalid_token" (distribution's answer when it does not trust the token's key).
 * `challenge` is the WWW-Authenticate value.
 */
export function refusesToken(status: number, challenge: string | undefined): boolean {
  return status === 401 && challenge !== undefined && /error="?invalid_token/i.test(challenge);
}

/** The same, read from a flat [name, value, ...] header array. */
export function isTokenRejection(status: number, headers: readonly string[]): boolean {
  if (status !== 401) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === 16 && headers[i]!.toLowerCase() === 'www-authenticate' && refusesToken(status, headers[i + 1])) return true;
  }
  return false;
}
