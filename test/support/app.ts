import { createApp, type App, type AppDeps } from '../../src/app.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { LogSink } from './log-sink.js';

export interface StartedApp {
  app: App;
  url: string;
  adminUrl: string;
  logs: LogSink;
  close(): Promise<void>;
}

/** A harbor-lb on free loopback ports with its log captured; `overrides` replace sections of a minimal config. */
export async function startApp(nodeUrls: string[], overrides: Partial<ConfigInput> = {}, deps: AppDeps = {}): Promise<StartedApp> {
  const logs = new LogSink();
  const config = validateConfig({
    listen: { address: '127.0.0.1', port: 0, ...overrides.listen },
    admin: { address: '127.0.0.1', port: 0, ...overrides.admin },
    nodes: nodeUrls.map((url, i) => ({ name: `n${i + 1}`, url })),
    // Each turn's routing lines at its end, as tests read them right after a response.
    log: { level: 'info', batchWindow: '0s' },
    // Active checks only where a test asks for them, so other tests see no background traffic.
    health: { enabled: false },
    // Tests send everything from one address: client and session affinity only where a test is about them.
    sticky: { keys: ['upload'] },
    // One process unless a test asks for request workers: most tests inject a clock or a probe, which stay in this process.
    proxy: { workers: 1, ...overrides.proxy },
    ...Object.fromEntries(Object.entries(overrides).filter(([k]) => k !== 'listen' && k !== 'admin' && k !== 'proxy')),
  });
  const app = createApp(config, { logDestination: logs, ...deps });
  const { proxyUrl, adminUrl } = await app.start();
  // Tests end with requests cut on purpose (hung nodes, aborts): no grace period when tearing down.
  return { app, url: proxyUrl, adminUrl, logs, close: () => app.close(0) };
}
