import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startProcess, type RunningProcess } from './processes.js';
import { freePort } from './servers.js';

export interface RealRegistry {
  url: string;
  port: number;
  process: RunningProcess;
  stop(): Promise<void>;
}

export interface RealRegistryOptions {
  /** Folder for this registry's config file. */
  dir: string;
  name: string;
  /** Shared storage root: several registries on one folder are Harbor's nodes on one CephFS. */
  storage: string;
  /** root.crt bundle the registry trusts for tokens. */
  rootCertBundle: string;
  /** Token realm it advertises (Harbor 1.x style: a fixed URL). */
  realm: string;
  httpSecret: string;
  issuer?: string;
  service?: string;
  /**
   * distribution's storage-driver health check (off by default, as in Harbor's own registry
   * config): when set, the registry stats its storage root at this interval and, while that
   * fails, answers 503 UNAVAILABLE to every request instead of a 500 per failed storage call.
   */
  storageHealthInterval?: string;
}

/** Starts Debian's docker-registry (distribution 2.8, the registry Harbor embeds) with token auth. */
export async function startRealRegistry(o: RealRegistryOptions): Promise<RealRegistry> {
  const port = await freePort();
  const configFile = join(o.dir, `${o.name}-registry.yml`);
  writeFileSync(
    configFile,
    `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: ${o.storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ${o.httpSecret}
auth:
  token:
    realm: ${o.realm}
    service: ${o.service ?? 'harbor-registry'}
    issuer: ${o.issuer ?? 'harbor-token-issuer'}
    rootcertbundle: ${o.rootCertBundle}
${
  o.storageHealthInterval === undefined
    ? ''
    : `health:
  storagedriver:
    enabled: true
    interval: ${o.storageHealthInterval}
    threshold: 1
`
}`,
  );
  const proc = await startProcess('docker-registry', ['serve', configFile], /listening on 127\.0\.0\.1:\d+/);
  return { url: `http://127.0.0.1:${port}`, port, process: proc, stop: () => proc.stop() };
}
