import type { ClusterNode } from '../nodes/node.js';
import type { NodeSet } from '../nodes/node-set.js';
import type { StateStore } from '../state/state-store.js';

/**
 * Keeps every request of one blob upload on the node that answered its POST: with differing
 * http.secret (or a node that stopped trusting the cluster's tokens) an upload that changes node
 * breaks. The pin is learned from the POST's Docker-Upload-UUID (or its Location) and read back
 * for the PATCH/PUT/DELETE of that upload id. A pin to a node that cannot take traffic is not
 * honoured: a stale pin must never hold a client on a dead node.
 */
export class UploadAffinity {
  constructor(
    private readonly store: StateStore,
    private readonly nodes: NodeSet,
    private readonly ttl: number,
  ) {}

  /** The pinned node for this upload, if it can take the request. */
  async pinned(uuid: string): Promise<ClusterNode | undefined> {
    const name = await this.store.get(key(uuid));
    if (name === undefined) return undefined;
    const node = this.nodes.get(name);
    // Draining nodes finish their uploads; unhealthy or quarantined ones cannot.
    return node && (node.state === 'healthy' || node.state === 'unknown' || node.state === 'draining') ? node : undefined;
  }

  /** Reads an upload id from a POST's answer and pins it to the node that gave it. */
  learn(node: ClusterNode, headers: readonly string[]): void {
    let uuid: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (name === 'docker-upload-uuid') uuid = headers[i + 1];
      else if (name === 'location' && uuid === undefined) uuid = uuidFromLocation(headers[i + 1]!);
    }
    if (uuid !== undefined && uuid.length > 0 && uuid.length <= 128) void this.store.set(key(uuid), node.name, this.ttl);
  }

  /** Moves a pin whose node could not serve the upload to the node that now does. */
  repin(uuid: string, node: ClusterNode): void {
    void this.store.set(key(uuid), node.name, this.ttl);
  }
}

function key(uuid: string): string {
  return `upload:${uuid}`;
}

function uuidFromLocation(location: string): string | undefined {
  const m = /\/blobs\/uploads\/([^/?#]+)/.exec(location);
  return m?.[1];
}
