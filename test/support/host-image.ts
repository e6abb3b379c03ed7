import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Dockerd } from './dockerd.js';

/**
 * Images made from this machine's own programs, for tests where no base image can be pulled
 * (harbor-facts.md: no Docker Hub here). A minimal root filesystem holds each program at the path
 * it has here, the shared libraries `ldd` lists for it, and whatever else the caller names; it is
 * packed with tar and `docker import`ed.
 */
export interface HostImageSpec {
  /** Executables, by absolute path or by name on PATH; each at the same path in the image, with its libraries. */
  programs: string[];
  /** Executables placed elsewhere in the image: path here → path in the image, with their libraries. */
  placed?: Record<string, string>;
  /** Files or folders copied to the same path (links followed). */
  copies?: string[];
  /** Symbolic links to create: path in the image → target. */
  links?: Record<string, string>;
  /** Users besides root: name → uid (group of the same id), each with a home folder. */
  users?: Record<string, number>;
  /** `docker import --change` instructions (ENV, CMD, USER ...). */
  changes?: string[];
}

export async function importHostImage(dockerd: Dockerd, dir: string, tag: string, spec: HostImageSpec): Promise<void> {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'tmp'), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  mkdirSync(join(root, 'root'), { recursive: true });
  const place = (path: string, inImage = path) => {
    const dest = join(root, inImage);
    if (existsSync(dest)) return;
    mkdirSync(dirname(dest), { recursive: true });
    // Links followed: the image gets the file itself under the name callers use (ld.so, lib*.so.N).
    cpSync(realpathSync(path), dest, { recursive: true, dereference: true, preserveTimestamps: true });
  };
  for (const program of spec.programs) {
    const path = program.startsWith('/') ? program : which(program);
    place(path);
    for (const lib of sharedLibraries(path)) place(lib);
  }
  for (const [path, inImage] of Object.entries(spec.placed ?? {})) {
    place(path, inImage);
    for (const lib of sharedLibraries(path)) place(lib);
  }
  for (const path of spec.copies ?? []) place(path);
  for (const [path, target] of Object.entries(spec.links ?? {})) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    symlinkSync(target, join(root, path));
  }
  const passwd = ['root:x:0:0:root:/root:/bin/sh'];
  const group = ['root:x:0:'];
  for (const [name, id] of Object.entries(spec.users ?? {})) {
    passwd.push(`${name}:x:${id}:${id}::/home/${name}:/bin/sh`);
    group.push(`${name}:x:${id}:`);
    mkdirSync(join(root, 'home', name), { recursive: true });
    chownSync(join(root, 'home', name), id, id);
  }
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), `${passwd.join('\n')}\n`);
  writeFileSync(join(root, 'etc', 'group'), `${group.join('\n')}\n`);
  const tarball = join(dir, 'rootfs.tar');
  execFileSync('tar', ['-C', root, '--numeric-owner', '-cf', tarball, '.'], { stdio: 'pipe' });
  const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(spec.changes ?? [])];
  const imported = await dockerd.docker(['import', ...changes.flatMap((c) => ['--change', c]), tarball, tag]);
  if (imported.code !== 0) throw new Error(`docker import ${tag}: ${imported.stderr}`);
}

/**
 * A Node.js base image from this machine's node and npm: what the Dockerfile's build stage needs
 * (node, npm and npx on PATH, /bin/sh for RUN, /usr/bin/env for npm's and tsc's `#!` lines) and
 * the `node` user (uid 1000) the official image has. npm's global config and the CA bundle go
 * along, so npm in the image reaches the registry the way npm here does.
 */
export function nodeBaseSpec(): HostImageSpec {
  const npmCli = realpathSync(which('npm'));
  const npmRoot = dirname(dirname(npmCli));
  const npmBin = dirname(which('npm'));
  // npm's global prefix, read off where npm is installed (<prefix>/lib/node_modules/npm): asking
  // `npm prefix -g` would answer for the node that runs it, the project's own under npm test.
  const prefix = dirname(dirname(dirname(npmRoot)));
  const copies = [npmRoot, join(prefix, 'etc', 'npmrc'), '/etc/ssl/certs/ca-certificates.crt', '/etc/nsswitch.conf'].filter((p) => existsSync(p));
  return {
    programs: ['/bin/sh', '/usr/bin/env'],
    // The Node.js running the tests (the project's own, from its `node` devDependency), where
    // this machine's npm prefix puts it: npm finds its global npmrc (registry, CA) next to node.
    placed: { [process.execPath]: join(prefix, 'bin', 'node') },
    copies,
    links: {
      [join(npmBin, 'npm')]: relative(npmBin, npmCli),
      [join(npmBin, 'npx')]: relative(npmBin, join(dirname(npmCli), 'npx-cli.js')),
    },
    users: { node: 1000 },
    // The official Node.js binary trusts its own CA list: the machine's bundle (copied) is added.
    changes: ['ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'],
  };
}

/** A Redis image from this machine's redis-server, started the way the official image is (`redis-server` on PATH). */
export function redisSpec(): HostImageSpec {
  return { programs: ['redis-server'], changes: ['CMD ["redis-server"]'] };
}

function which(name: string): string {
  return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
}

/** Absolute paths of the libraries a dynamically linked program loads, the loader included. */
function sharedLibraries(program: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [program], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return []; // statically linked ("not a dynamic executable")
  }
  return [...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
}
