/**
 * A header name's lowercase form when it has the length of one of `names`, else '' (it is none of
 * them). Rules on the request path each act on a few headers; lowercasing every name a request or
 * an answer carries, to compare it, cost more than comparing its length first. The lengths come
 * from the names, so a rule's list and its filter cannot drift apart.
 */
export function lowercaseIfNamed(names: Iterable<string>): (name: string) => string {
  const lengths = new Set([...names].map((n) => n.length));
  return (name) => (lengths.has(name.length) ? name.toLowerCase() : '');
}
