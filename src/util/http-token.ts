/** An HTTP token (RFC 9110 5.6.2): a method, a header field name, a cookie name. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** 1 for each byte a token may hold (HTTP_TOKEN's class), 0 for the rest. */
export const TOKEN_BYTES = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN_BYTES[c.charCodeAt(0)] = 1;

/**
 * The length of the token at `text[from..to)`'s start: `to - from` when all of it is one. As
 * HTTP_TOKEN, a character at a time: on the request path a regular expression's call costs more
 * than the few characters of a header name it reads.
 */
export function tokenLength(text: string, from = 0, to = text.length): number {
  let i = from;
  // Past 0xff (not a latin1 string) reads undefined: not a token character.
  while (i < to && TOKEN_BYTES[text.charCodeAt(i)] === 1) i++;
  return i - from;
}

/** Whether `s` is a token, as HTTP_TOKEN.test(s). */
export function isHttpToken(s: string): boolean {
  return s.length > 0 && tokenLength(s) === s.length;
}
