import { Agent, Pool, type Dispatcher } from 'undici';
import type { Config } from '../config/schema.js';
import { nodeTlsOptions } from '../nodes/node-tls.js';
import { publicHostHeaders } from '../token/realm.js';

/** One answer as doctor reads it: the whole body as text. */
export interface DoctorAnswer {
  status: number;
  text: string;
  header(name: string): string | undefined;
}

export type DoctorRequest = (origin: string, path: string, headers?: Record<string, string>, method?: string, body?: Buffer) => Promise<DoctorAnswer>;

/**
 * doctor's HTTP client: one pool per node origin, each with the node's private CA (if any) as the
 * proxy's own pools have, every request carrying the public Host as client traffic does, so
 * Harbor 2.x builds realms and Locations from the public name.
 */
export function createDoctorClient(config: Config): { request: DoctorRequest; agent: Agent; baseHeaders: Record<string, string>; close(): Promise<void> } {
  const timeout = config.doctor.timeout;
  const tlsOf = new Map(config.nodes.map((n) => [new URL(n.url).origin, nodeTlsOptions(n)]));
  const agent = new Agent({
    connectTimeout: timeout,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    connections: 4,
    factory: (origin, opts) => new Pool(origin, { ...opts, connect: tlsOf.get(new URL(String(origin)).origin) }),
  });
  const baseHeaders = publicHostHeaders(config.publicUrl, 'harbor-lb-doctor');
  const request: DoctorRequest = async (origin, path, headers = {}, method = 'GET', body) => {
    const res = await agent.request({ origin, path, method: method as Dispatcher.HttpMethod, headers: { ...baseHeaders, ...headers }, body });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      text,
      header: (n) => {
        const v = res.headers[n];
        return Array.isArray(v) ? v[0] : v;
      },
    };
  };
  return { request, agent, baseHeaders, close: () => agent.close() };
}
