import { fstatSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/** Set in a request worker's environment when its stdout is a pipe of its own to the control plane. */
export const OWN_STDOUT_ENV = 'HARBOR_LB_OWN_STDOUT';

/**
 * Whether request workers write their log lines to a pipe of their own, which the control plane
 * passes on as the one writer of stdout: when stdout is a pipe or a socket (docker, journald,
 * systemd). Several processes writing to one pipe must cut every write to PIPE_BUF (4 KiB) to keep
 * lines whole: a write per 8 routing lines, each a round trip through a worker's thread pool.
 * Through its own pipe a worker writes a whole batch at once, and the control plane passes whole
 * lines on in large writes. A regular file keeps being shared (its writes land whole at any size,
 * write-limit.ts), and so does a terminal (people read it; its lines are few).
 */
export function relaysWorkerLogs(fd = 1): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}

/**
 * Whole lines out of a worker's stdout, which arrives in pieces cut anywhere: each piece's lines
 * go on at once, what follows its last line end waits for the next piece.
 */
export class LineRelay {
  #partial = '';
  /** A character whose bytes two pieces share is decoded once both came. */
  readonly #decoder = new StringDecoder('utf8');

  constructor(private readonly out: (lines: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.#partial + this.#decoder.write(chunk);
    const end = text.lastIndexOf('\n') + 1;
    this.#partial = text.slice(end);
    if (end > 0) this.out(end === text.length ? text : text.slice(0, end));
  }

  /** The worker's stdout ended: a last line without its end (a worker that died mid-write) still goes on, ended. */
  end(): void {
    this.#partial += this.#decoder.end();
    if (this.#partial !== '') this.out(`${this.#partial}\n`);
    this.#partial = '';
  }
}
