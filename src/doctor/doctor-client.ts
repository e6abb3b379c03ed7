import { Agent, Pool, type Dispatcher } from 'undici';
import type { Config } from '../config/schema.js';
import { nodeTlsOptions, type NodeTlsOptions } from '../nodes/node-tls.js';
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
export function createDoctorClient(config: Config): NodeClient {
  const tlsOf = new Map(config.nodes.map((n) => [new URL(n.url).origin, nodeTlsOptions(n)]));
  return createNodeClient({ tlsOf: (origin) => tlsOf.get(origin), publicUrl: config.publicUrl, timeout: config.doctor.timeout, userAgent: 'harbor-lb-doctor' });
}

export interface NodeClient {
  request: DoctorRequest;
  agent: Agent;
  baseHeaders: Record<string, string>;
  close(): Promise<void>;
}

/** The same client for any set of nodes (the live upload check builds one from the nodes of the moment). */
export function createNodeClient(o: { tlsOf: (origin: string) => NodeTlsOptions | undefined; publicUrl: string; timeout: number; userAgent: string }): NodeClient {
  const agent = new Agent({
    connectTimeout: o.timeout,
    headersTimeout: o.timeout,
    bodyTimeout: o.timeout,
    connections: 4,
    factory: (origin, opts) => new Pool(origin, { ...opts, allowH2: false, connect: o.tlsOf(new URL(String(origin)).origin) }),
  });
  const baseHeaders = publicHostHeaders(o.publicUrl, o.userAgent);
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
