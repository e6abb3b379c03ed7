import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** podman as root with everything it keeps inside one test folder (harbor-facts.md). */
export interface Podman {
  /** The auth file `login` writes and `push`/`pull` read. */
  authFile: string;
  podman(args: string[], stdin?: string, timeoutMs?: number): Promise<PodmanResult>;
  /** Removes what podman wrote outside the test folder and was not there before (its blob-info cache). */
  cleanup(): void;
}

/**
 * containers/image keeps a root user's blob-info cache in /var/lib/containers/cache whatever
 * --root says, and podman has no flag to move it.
 */
const BLOB_INFO_CACHE = ['/var/lib/containers', '/var/lib/containers/cache', '/var/lib/containers/cache/blob-info-cache-v1.boltdb'];

/**
 * Prepares podman with its storage (vfs), run root, temporary files, auth file and
 * registries.conf inside `dir`, so nothing it writes outlives the test folder. Resolves with the
 * reason instead when it cannot run here (not root, not installed), so the caller skips.
 */
export async function preparePodman(dir: string): Promise<Podman | { skip: string }> {
  if (process.getuid?.() !== 0) return { skip: 'podman with vfs storage in a test folder needs root' };
  const createdByUs = BLOB_INFO_CACHE.find((p) => !existsSync(p));
  const cleanup = () => {
    if (createdByUs) rmSync(createdByUs, { recursive: true, force: true });
  };
  const home = join(dir, 'podman-home');
  const tmp = join(dir, 'podman-tmp');
  mkdirSync(home, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  const registries = join(dir, 'registries.conf');
  // No search registries: every reference the test uses is fully qualified, and the machine's own configuration stays out.
  writeFileSync(registries, 'unqualified-search-registries = []\n');
  const authFile = join(dir, 'podman-auth.json');
  const global = ['--root', join(dir, 'podman-root'), '--runroot', join(dir, 'podman-run'), '--tmpdir', join(dir, 'podman-libpod'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
  const env = { ...process.env, HOME: home, TMPDIR: tmp, CONTAINERS_REGISTRIES_CONF: registries, REGISTRY_AUTH_FILE: authFile };
  const run: Podman['podman'] = (args, stdin, timeoutMs = 300_000) =>
    new Promise((resolve) => {
      const child = execFile('podman', [...global, ...args], { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        // A podman that is not installed writes nothing: say why from the spawn error.
        resolve({ code, stdout, stderr: err && stderr === '' ? err.message : stderr });
      });
      child.stdin?.end(stdin);
    });
  const version = await run(['version', '--format', '{{.Client.Version}}'], undefined, 30_000);
  if (version.code !== 0) {
    cleanup();
    return { skip: `podman cannot run here: ${(version.stderr || version.stdout).trim().split('\n')[0]}` };
  }
  return { authFile, podman: run, cleanup };
}
