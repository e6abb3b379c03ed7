import { createApp, type App, type AppDeps } from '../../src/app.js';
import { loadConfigFile } from '../../src/config/load.js';
import { LogSink } from './log-sink.js';

export interface FileApp {
  app: App;
  logs: LogSink;
  proxyUrl: string;
  adminUrl: string;
  proxyPort: number;
}

/**
 * A harbor-lb started from a config file, as `harbor-lb serve` does, that reloads from the same
 * file (app.reload(), POST /-/reload); its log captured. The caller closes it (app.close(0)).
 */
export async function startFromFile(file: string, deps: AppDeps = {}, opts: { workers?: number } = {}): Promise<FileApp> {
  const logs = new LogSink();
  // One process unless the test asks for request workers: an injected clock stays in this process.
  const load = () => {
    const config = loadConfigFile(file);
    // Each turn's routing lines at its end, as tests read them right after a response.
    return { ...config, proxy: { ...config.proxy, workers: opts.workers ?? 1 }, log: { ...config.log, batchWindow: 0 } };
  };
  const app = createApp(load(), { logDestination: logs, loadConfig: load, ...deps });
  const { proxyUrl, adminUrl, proxyPort } = await app.start();
  return { app, logs, proxyUrl, adminUrl, proxyPort };
}
