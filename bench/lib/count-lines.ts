import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The lines of `file` that contain `needle`, read a megabyte at a time: a full run's routing log
 * is over 512 MiB, more than one JavaScript string may hold.
 */
export function countLinesWith(file: string, needle: string): number {
  const want = Buffer.from(needle);
  const buf = Buffer.allocUnsafe(1024 * 1024);
  const fd = openSync(file, 'r');
  let count = 0;
  // The unfinished line at the end of a read, carried into the next.
  let carry = Buffer.alloc(0);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(0x0a, start); nl >= 0; nl = data.indexOf(0x0a, start)) {
        if (data.subarray(start, nl).includes(want)) count++;
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
    }
  } finally {
    closeSync(fd);
  }
  if (carry.includes(want)) count++;
  return count;
}
