import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmdirSync } from 'node:fs';

/**
 * A network namespace of the test's own, joined to this one by a veth pair on a private /30:
 * the only way to give a client a non-loopback address to talk to (dockerd verifies TLS only for
 * registries outside 127.0.0.0/8) without any traffic leaving the machine.
 */
export interface NetnsLink {
  name: string;
  /** The address of the veth end in this (the test's) namespace. */
  hostAddress: string;
  /** The address of the end inside the namespace. */
  nsAddress: string;
  /**
   * Prefix that runs a command inside the namespace: nsenter joins the network namespace alone.
   * (`ip netns exec` also remounts /sys, which drops the cgroup mounts dockerd needs: "Devices
   * cgroup isn't mounted".)
   */
  exec: string[];
  remove(): void;
}

const ip = (args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

/** Creates the namespace and the link; throws (having removed what it made) when `ip` cannot. */
export function createNetnsLink(): NetnsLink {
  const id = randomBytes(3).toString('hex');
  const name = `hlb-${id}`;
  const hostIf = `hlbh${id}`;
  const nsIf = `hlbn${id}`;
  // 10.213.N.0/30 with N random: two runs side by side pick different links.
  const net = `10.213.${randomBytes(1)[0]!}`;
  const hostAddress = `${net}.1`;
  const nsAddress = `${net}.2`;
  // `ip netns add` makes /run/netns (a mount point) if missing: take it away again afterwards.
  const runNetnsExisted = existsSync('/run/netns');
  const remove = () => {
    // Deleting the namespace destroys the veth end in it, and with it the peer.
    try {
      ip(['netns', 'del', name]);
    } catch {}
    try {
      ip(['link', 'del', hostIf]);
    } catch {}
    if (!runNetnsExisted && existsSync('/run/netns') && readdirSync('/run/netns').length === 0) {
      try {
        execFileSync('umount', ['/run/netns'], { stdio: 'pipe' });
      } catch {}
      try {
        rmdirSync('/run/netns');
      } catch {}
    }
  };
  try {
    ip(['netns', 'add', name]);
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    ip(['link', 'set', nsIf, 'netns', name]);
    ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['-n', name, 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf]);
    ip(['-n', name, 'link', 'set', nsIf, 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    remove();
    throw new Error(`cannot make a network namespace here: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
  }
  return { name, hostAddress, nsAddress, exec: ['nsenter', `--net=/run/netns/${name}`], remove };
}
