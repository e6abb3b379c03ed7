/**
 * This process's resident memory in bytes, or null when it cannot be read: Node reads it from
 * /proc, which fails (EMFILE) when the process is out of file descriptors. A status report must
 * not end the process that serves the traffic.
 */
export function residentBytes(): number | null {
  try {
    return process.memoryUsage.rss();
  } catch {
    return null;
  }
}
