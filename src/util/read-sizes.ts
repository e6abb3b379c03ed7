/** A socket read's size, as Node's own. */
export const READ_SIZE = 64 * 1024;

/**
 * A long body (a blob pulled from a node, an upload pushed by a client) is read in pieces of up
 * to this: each piece costs a read, a write to the other side and the work between them whatever
 * its size, so 1 MiB pieces move a GiB for about half the CPU of 64 KiB ones (docs/benchmarks.md).
 * A piece waits whole for a side that takes it slowly, so only a few bodies read so at once
 * (nodes/read-pool.ts, proxy/client-reads.ts).
 */
export const LARGE_READ_SIZE = 1024 * 1024;
