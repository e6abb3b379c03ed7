import type { Logger } from '../log/loggers.js';
import type { ClusterNode } from '../nodes/node.js';
import type { NodeFlags } from '../nodes/node-flags.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { Clock, Timer } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { checkUploadSecrets, type UploadRequest } from './upload-secrets.js';

/** A client for one round, made from the nodes of the moment (their CAs), closed after it. */
export type RoundClient = (nodes: readonly ClusterNode[]) => { request: UploadRequest; close(): Promise<void> };

export interface UploadSecretProbeOptions {
  /** doctor.credentials: without them there is nothing to push with, and the probe does not run. */
  credentials: { username: string; password: string } | undefined;
  repository: string;
  service: string;
  /** doctor.uploadCheckInterval; 0: off. */
  interval: number;
}

/**
 * HTTP_SECRET_DIFFERS while harbor-lb runs, not only when someone runs doctor: harbor-lb's own
 * upload, begun on one node and continued on each other one (nodes taking traffic), once at
 * least two take traffic and then every `interval` ("0s": never). It raises the flag on a node whose registry refuses the
 * continued upload as invalid, and clears it once the upload continues there. Harbor-lb's pins keep
 * each push on its node and so hide the mismatch, until a pin is lost (Redis gone, a node failing
 * over): then pushes fail with "blob upload unknown". Only this probe raises the flag (client
 * traffic never does).
 */
export class UploadSecretProbe {
  #opts: UploadSecretProbeOptions;
  #timer: Timer | undefined;
  #stopped = true;
  #ran = false;
  #running = false;
  #refused = false;

  constructor(
    private readonly nodes: Pick<NodeSet, 'all' | 'available' | 'on' | 'off'>,
    private readonly flags: NodeFlags,
    opts: UploadSecretProbeOptions,
    private readonly client: RoundClient,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.#opts = opts;
  }

  /** Runs only with credentials and a non-zero interval ("0s" turns it off). */
  #on(): boolean {
    return this.#opts.credentials !== undefined && this.#opts.interval > 0;
  }

  /** A reload's settings: turned off, its flags go (nothing would keep them true); a new interval applies from now. */
  configure(opts: UploadSecretProbeOptions): void {
    this.#opts = opts;
    if (this.#timer) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#on()) {
      for (const n of this.nodes.all) this.flags.clear(n, 'HTTP_SECRET_DIFFERS');
      return;
    }
    if (this.#stopped) return;
    if (!this.#ran) this.#onState();
    else if (!this.#running) this.#schedule();
  }

  start(): void {
    this.#stopped = false;
    // The first round waits for two nodes that take traffic.
    this.nodes.on('state', this.#onState);
    this.#onState();
  }

  /** Stops its rounds; one under way ends by its requests' timeouts and changes nothing. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.nodes.off('state', this.#onState);
    if (this.#timer) this.clock.clearTimeout(this.#timer);
  }

  readonly #onState = (): void => {
    if (this.#ran || this.#stopped || !this.#on() || this.#serving().length < 2) return;
    this.#ran = true;
    void this.#loop();
  };

  async #loop(): Promise<void> {
    this.#running = true;
    await this.round();
    this.#running = false;
    if (!this.#stopped && this.#on()) this.#schedule();
  }

  #schedule(): void {
    this.#timer = this.clock.setTimeout(() => void this.#loop(), this.#opts.interval * (0.9 + 0.2 * this.random()));
    this.#timer.unref?.();
  }

  /** Nodes taking traffic on their own merit: not in panic, quarantine or drain (unknown: checks are off or not done yet). */
  #serving(): ClusterNode[] {
    return this.nodes.available().filter((n) => n.state === 'healthy' || n.state === 'unknown');
  }

  /** One check: the first serving node is home, each other serving node is continued on. */
  async round(): Promise<void> {
    const { credentials, repository, service } = this.#opts;
    const [home, ...others] = this.#serving();
    if (credentials === undefined || home === undefined || others.length === 0) return;
    const client = this.client([home, ...others]);
    const result = await checkUploadSecrets({
      home: { name: home.name, origin: home.origin },
      others: others.map((n) => ({ name: n.name, origin: n.origin })),
      credentials,
      repository,
      service,
      request: client.request,
    })
      .catch(() => undefined)
      .finally(() => client.close());
    if (this.#stopped || result === undefined) return;
    if (result.token === 'refused') {
      if (!this.#refused) this.logger.warn({ event: 'upload_check_failed', node: home.name, status: result.status, repository }, `the upload check could not run: ${home.name}'s token service refused doctor.credentials (${result.status}) for ${repository}`);
      this.#refused = true;
      return;
    }
    this.#refused = false;
    for (const node of others) {
      const differs = result.differs.get(node.name);
      if (differs === true) this.flags.raise(node, 'HTTP_SECRET_DIFFERS', { node: node.name, startedOn: home.name }, { check: 'an upload harbor-lb began was continued on this node', answer: '404 BLOB_UPLOAD_INVALID' });
      else if (differs === false) this.flags.clear(node, 'HTTP_SECRET_DIFFERS');
    }
    // Home agrees with every other node: a flag it got as another node's peer is stale.
    if (others.every((n) => result.differs.get(n.name) === false)) this.flags.clear(home, 'HTTP_SECRET_DIFFERS');
  }
}
