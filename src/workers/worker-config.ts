import type { Config } from '../config/schema.js';

/**
 * The config a request worker runs with: the control plane's, with each node's connection budgets
 * shared out among the workers, so that a node sees no more connections from harbor-lb than
 * proxy.maxConnectionsPerNode and proxy.maxUploadConnectionsPerNode say, whatever the worker count.
 */
export function workerConfig(config: Config, workers: number): Config {
  const share = (n: number) => Math.max(1, Math.ceil(n / workers));
  return {
    ...config,
    proxy: {
      ...config.proxy,
      maxConnectionsPerNode: share(config.proxy.maxConnectionsPerNode),
      maxUploadConnectionsPerNode: share(config.proxy.maxUploadConnectionsPerNode),
    },
  };
}
