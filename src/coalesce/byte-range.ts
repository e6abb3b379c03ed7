/** What a client's Range header asks of a blob of known size. */
export type RangeAsk = { kind: 'whole' } | { kind: 'range'; start: number; end: number } | { kind: 'other' };

/**
 * One satisfiable byte range, resolved against the blob's size (`end` inclusive, clamped to the
 * blob). Several ranges, other units, a start past the end or anything malformed are 'other':
 * served by a node, so the client gets the registry's own answer (multipart, 416…).
 */
export function byteRange(header: string | undefined, size: number): RangeAsk {
  if (header === undefined) return { kind: 'whole' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null || (m[1] === '' && m[2] === '')) return { kind: 'other' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return suffix === 0 ? { kind: 'other' } : { kind: 'range', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start >= size || end < start ? { kind: 'other' } : { kind: 'range', start, end };
}
