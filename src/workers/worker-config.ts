import type { Config } from '../config/schema.js';

/**
 * The config a request worker runs with: the control plane's, with each node's connection budgets
 * shared out among the workers, so that a node sees no more connections from harbor-lb than
 * proxy.maxConnectionsPerNode and proxy.maxUploadConnectionsPerNode say, whatever the worker count:
 * the first workers (by index, from 1) take one more where the budget does not divide evenly, and
 * each takes at least one (a budget below the worker count is the one case a node may see more).
 */
export function workerConfig(config: Config, workers: number, index: number): Config {
  const share = (n: number) => Math.max(1, Math.floor(n / workers) + (index <= n % workers ? 1 : 0));
  return {
    ...config,
    proxy: {
      ...config.proxy,
      maxConnectionsPerNode: share(config.proxy.maxConnectionsPerNode),
      maxUploadConnectionsPerNode: share(config.proxy.maxUploadConnectionsPerNode),
    },
  };
}
