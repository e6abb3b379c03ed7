import { Writable } from 'node:stream';

/** Captures the JSON log lines an app writes, for assertions. */
export class LogSink extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  readonly #waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      this.raw.push(line);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      this.lines.push(parsed);
      for (let i = this.#waiters.length - 1; i >= 0; i--) {
        const w = this.#waiters[i]!;
        if (w.match(parsed)) {
          this.#waiters.splice(i, 1);
          w.resolve(parsed);
        }
      }
    }
    cb();
  }

  /**
   * Resolves with the first line (already written or still to come) that matches: no polling, no
   * sleeping. With `timeoutMs`, rejects naming `what` if no such line came by then, so a test that
   * waits for a line the code never writes fails instead of hanging until the runner's timeout.
   */
  waitFor(match: (l: Record<string, unknown>) => boolean, timeoutMs?: number, what = 'a matching log line'): Promise<Record<string, unknown>> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve };
      this.#waiters.push(waiter);
      if (timeoutMs === undefined) return;
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no log line within ${timeoutMs} ms: ${what}`));
      }, timeoutMs);
      waiter.resolve = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
  }

  /** Resolves once `n` routing lines have been written. */
  async waitForRequests(n: number): Promise<Record<string, unknown>[]> {
    while (this.requests().length < n) await new Promise<void>((resolve) => this.#waiters.push({ match: (l) => l.event === 'request', resolve: () => resolve() }));
    return this.requests();
  }

  requests(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.event === 'request');
  }

  text(): string {
    return this.raw.join('\n');
  }
}
