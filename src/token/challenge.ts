/**
 * A registry's refusal of a token's signature or claims: 401 with a Bearer challenge carrying
 * error="invalid_token" (distribution's answer when it does not trust the token's key).
 */
export function isTokenRejection(status: number, headers: readonly string[]): boolean {
  if (status !== 401) return false;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === 16 && headers[i]!.toLowerCase() === 'www-authenticate' && /error="?invalid_token/i.test(headers[i + 1]!)) return true;
  }
  return false;
}
