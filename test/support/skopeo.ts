import { execFile } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SkopeoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * skopeo as an unprivileged user (harbor-facts.md): HOME and XDG_RUNTIME_DIR inside the test
 * directory, a policy that accepts any image, so nothing is written outside the test.
 */
export class Skopeo {
  readonly home: string;
  readonly runtime: string;
  readonly policy: string;
  readonly #uid: number;
  readonly #gid: number;

  constructor(dir: string, user = { name: 'nobody', uid: 65534, gid: 65534 }) {
    this.home = join(dir, 'skopeo-home');
    this.runtime = join(dir, 'skopeo-run');
    this.policy = join(dir, 'policy.json');
    this.#uid = user.uid;
    this.#gid = user.gid;
    mkdirSync(this.home, { recursive: true });
    mkdirSync(this.runtime, { recursive: true, mode: 0o700 });
    writeFileSync(this.policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    chownSync(this.home, user.uid, user.gid);
    chownSync(this.runtime, user.uid, user.gid);
    this.user = user.name;
  }

  readonly user: string;

  /** A folder the skopeo user may write to (for `dir:` pulls). */
  writableDir(name: string): string {
    const d = join(this.home, name);
    mkdirSync(d, { recursive: true });
    chownSync(d, this.#uid, this.#gid);
    return d;
  }

  run(args: string[], timeoutMs = 120_000): Promise<SkopeoResult> {
    const full = ['-u', this.user, '--', 'env', `HOME=${this.home}`, `XDG_RUNTIME_DIR=${this.runtime}`, 'skopeo', '--policy', this.policy, ...args];
    return new Promise((resolve) => {
      execFile('runuser', full, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }
}
