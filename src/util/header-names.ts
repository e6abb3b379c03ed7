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
