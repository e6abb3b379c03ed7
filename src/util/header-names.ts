/**
 * Which of `names` (lowercase header names) a header name is, ignoring ASCII case: that listed
 * name, or '' when it is none of them. Rules on the request path each act on a few headers;
 * lowercasing every name a request or an answer carries, to compare it, cost more than this: the
 * length first, then the characters of the few listed names of that length, without making a
 * string (a name sliced from a node's head is lowercased by a call into V8's runtime).
 */
export function oneOfNames(names: Iterable<string>): (name: string) => string {
  // Indexed by length: an array's element is read for a name of any length (undefined past its end).
  const byLength: string[][] = [];
  for (const n of names) {
    if (n !== n.toLowerCase()) throw new Error(`oneOfNames: "${n}" is not lowercase`);
    const same = (byLength[n.length] ??= []);
    if (!same.includes(n)) same.push(n);
  }
  for (let i = 0; i < byLength.length; i++) byLength[i] ??= [];
  return (name) => {
    const same = byLength[name.length];
    if (same === undefined) return '';
    for (let i = 0; i < same.length; i++) if (sameIgnoringCase(name, same[i]!)) return same[i]!;
    return '';
  };
}

/**
 * As oneOfNames, for a name read from bytes (`bytes[from..to)`, latin1) before it is a string:
 * a response head's names are matched where they were read.
 */
export function oneOfNamesAt(names: Iterable<string>): (bytes: Uint8Array, from: number, to: number) => string {
  const byLength: Array<Array<{ name: string; bytes: Uint8Array }>> = [];
  for (const n of names) {
    if (n !== n.toLowerCase()) throw new Error(`oneOfNamesAt: "${n}" is not lowercase`);
    const same = (byLength[n.length] ??= []);
    if (!same.some((e) => e.name === n)) same.push({ name: n, bytes: Buffer.from(n, 'latin1') });
  }
  for (let i = 0; i < byLength.length; i++) byLength[i] ??= [];
  return (bytes, from, to) => {
    const same = byLength[to - from];
    if (same === undefined) return '';
    for (let i = 0; i < same.length; i++) if (sameBytesIgnoringCase(bytes, from, same[i]!.bytes)) return same[i]!.name;
    return '';
  };
}

/** `bytes[from..from + lower.length)` is `lower` (lowercase ASCII) but for the case of its ASCII letters. */
function sameBytesIgnoringCase(bytes: Uint8Array, from: number, lower: Uint8Array): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = bytes[from + i]!;
    const l = lower[i]!;
    if (c !== l && !(l >= 97 && l <= 122 && c === l - 32)) return false;
  }
  return true;
}

/** `name` is `lower` (lowercase, as long) but for the case of its ASCII letters. */
function sameIgnoringCase(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = name.charCodeAt(i);
    const l = lower.charCodeAt(i);
    // Only an ASCII letter has another case: 'K' (0x4b) is 'k', the Kelvin sign is not.
    if (c !== l && !(l >= 97 && l <= 122 && c === l - 32)) return false;
  }
  return true;
}
