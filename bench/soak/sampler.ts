import http from 'node:http';
import type { SoakContext } from './context.js';
import { procUsage, type LbInstance } from './instances.js';
import type { LatencySummary, SoakRoute } from './stats.js';

export interface InstanceSample {
  name: string;
  rssKb?: number;
  fds?: number;
  /** CPU seconds the process used since it started. */
  cpuS?: number;
  /** Node name → state, from the instance's admin /-/status. */
  nodes?: Record<string, string>;
  redisConnected?: boolean;
}

export interface Sample {
  t: number;
  /** The machine's 1-minute load average: how busy the machine was, the soak included. */
  load1: number;
  instances: InstanceSample[];
  totals: ReturnType<SoakContext['totals']>;
  latency: Record<SoakRoute, LatencySummary>;
}

/** RSS and fds of each instance (read before anything connects to it), then its admin status. */
export async function sampleInstances(instances: LbInstance[], withStatus: boolean): Promise<InstanceSample[]> {
  const usage = instances.map((i) => procUsage(i.pid));
  return Promise.all(
    instances.map(async (inst, k) => {
      const s: InstanceSample = { name: inst.name, rssKb: usage[k]?.rssKb, fds: usage[k]?.fds, cpuS: usage[k]?.cpuS };
      if (withStatus) {
        const doc = (await getJson(`${inst.adminUrl}/-/status`).catch(() => undefined)) as
          | { nodes?: Array<{ name: string; state: string }>; sticky?: { connected?: boolean } }
          | undefined;
        if (doc?.nodes) s.nodes = Object.fromEntries(doc.nodes.map((n) => [n.name, n.state]));
        if (doc?.sticky) s.redisConnected = doc.sticky.connected;
      }
      return s;
    }),
  );
}

/** Each instance's `harbor_lb_pin_evictions_total` from its admin /metrics, by space (summed over stores); undefined when unreadable. */
export async function readPinEvictions(instances: LbInstance[]): Promise<Array<{ name: string; evictions?: Record<string, number> }>> {
  return Promise.all(
    instances.map(async (inst) => {
      const got = await getText(`${inst.adminUrl}/metrics`).catch(() => undefined);
      if (got?.status !== 200) return { name: inst.name };
      const text = got.text;
      const evictions: Record<string, number> = {};
      let found = false;
      for (const line of text.split('\n')) {
        const m = /^harbor_lb_pin_evictions_total\{([^}]*)\}\s+(\S+)/.exec(line);
        if (!m) continue;
        const space = /(?:^|,)space="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
        evictions[space] = (evictions[space] ?? 0) + Number(m[2]);
        found = true;
      }
      return found ? { name: inst.name, evictions } : { name: inst.name };
    }),
  );
}

/** GET with a fresh connection (closed afterwards) and a 3 s bound. */
async function getJson(url: string): Promise<unknown> {
  return JSON.parse((await getText(url)).text) as unknown;
}

function getText(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 3000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
