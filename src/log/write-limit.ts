import { fstatSync } from 'node:fs';

/** Writes of at most this many bytes to a pipe are atomic (POSIX PIPE_BUF on Linux). */
export const PIPE_BUF = 4096;

/**
 * A write to a regular file carries up to this much: a whole batch of routing lines
 * (BatchedDestination holds 256 KiB of them as UTF-8, or 256 K UTF-16 units as text, at most
 * 768 KiB, and the line that took it past, whose path came in a head of at most 64 KiB).
 */
export const FILE_WRITE = 1024 * 1024;

/**
 * The most one write to `fd` may carry when several processes write to it (request workers
 * inherit the control plane's stdout) and their lines must never interleave.
 *
 * A pipe or a socket (docker, journald) keeps only writes of PIPE_BUF bytes whole. A regular file
 * the processes inherited is one open file description, and Linux updates its offset under a
 * lock (since 3.14) or appends atomically with O_APPEND: every write lands whole, whatever its
 * size, unless it is cut short (disk full, a file size limit): sonic-boom then writes the rest
 * in a second write, and another process's batch may land between the two, as it could between
 * two 4 KiB pieces before. There the batch goes out in one write instead of one per 4 KiB:
 * measured, 2 workers on small GETs logging to a file spent about 5 µs less CPU per request
 * (docs/benchmarks.md). Anything else, or a file off Linux, gets the pipe's limit.
 */
export function sharedWriteLimit(fd: number, platform: NodeJS.Platform = process.platform): number {
  if (platform !== 'linux') return PIPE_BUF;
  try {
    return fstatSync(fd).isFile() ? FILE_WRITE : PIPE_BUF;
  } catch {
    return PIPE_BUF;
  }
}
