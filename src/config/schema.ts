import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseByteSize } from './byte-size.js';
import { MAX_DURATION_MS, parseDuration } from './duration.js';
import { ROUTES } from '../registry/route.js';
import { isLoopback } from './loopback.js';
import { cipherListProblem, INTERMEDIATE_CIPHERS } from './tls-ciphers.js';

/**
 * A duration written as a string ("5s", "1m30s"), held as milliseconds. Zero is refused (a zero
 * timeout or interval means "never" or "spin" to the libraries it reaches), and so is anything
 * over 24h (timers past 2^31-1 ms fire at once).
 */
/** min 0: "0s" is allowed (a setting that "0s" turns off). */
const duration = (fallback: string, min: 0 | 1 = 1) =>
  z
    .string({ error: 'expected a duration such as "5s"' })
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a duration such as "5s", got "${text}"` });
        return z.NEVER;
      }
      if (ms < min || ms > MAX_DURATION_MS) {
        ctx.addIssue({ code: 'custom', message: `expected a duration from ${min === 0 ? '0s' : '1ms'} to 24h, got "${text}"` });
        return z.NEVER;
      }
      return ms;
    })
    .prefault(fallback);

const httpUrl = (what: string) =>
  z.string({ error: `expected ${what}` }).refine(
    (text) => {
      try {
        const u = new URL(text);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '';
      } catch {
        return false;
      }
    },
    // abort: the checks chained after this one parse the URL again and must only see valid ones.
    { message: `expected ${what}`, abort: true },
  );

const port = z
  .number({ error: 'expected a port number (0-65535)' })
  .int('expected a port number (0-65535)')
  .min(0, 'expected a port number (0-65535)')
  .max(65535, 'expected a port number (0-65535)');
const address = z.string({ error: 'expected an IP address' }).refine((a) => isIP(a) !== 0 || a === 'localhost', {
  message: 'expected an IP address',
});
const positiveInt = (fallback: number) => z.number().int().min(1).prefault(fallback);
const cidr = z.string().refine(
  (text) => {
    const [ip, bits, extra] = text.split('/');
    if (extra !== undefined || ip === undefined) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
  },
  { message: 'expected an IP address or CIDR range such as 10.0.0.0/8' },
);

const tlsSchema = z.strictObject({
  cert: z.string().min(1, 'expected the path of a PEM certificate file'),
  key: z.string().min(1, 'expected the path of a PEM private key file'),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).prefault('TLSv1.2'),
  /** OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites too, when named); checked against OpenSSL here so a bad one stops start-up or a reload. */
  ciphers: z
    .string({ error: 'expected an OpenSSL cipher string' })
    // Node reads "" as "its defaults", which is not what an empty setting looks like it says.
    .min(1, 'expected an OpenSSL cipher string, not an empty one')
    .superRefine((ciphers, ctx) => {
      const why = cipherListProblem(ciphers);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: `expected an OpenSSL cipher string such as "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305" (OpenSSL: ${why})` });
    })
    .prefault(INTERMEDIATE_CIPHERS),
});

const listenSchema = z.strictObject({
  address: address.prefault('0.0.0.0'),
  port: port.prefault(8070),
  tls: tlsSchema.optional(),
  /** Peers whose X-Forwarded-* headers are believed and appended to; everyone else's are replaced. */
  trustedProxies: z.array(cidr).prefault([]),
  /** L4 balancers (addresses or CIDRs) whose connections may begin with a PROXY header (v1/v2) naming the client; empty: none. */
  proxyProtocol: z.array(cidr).prefault([]),
  /** A client connection with no traffic for this long is closed. */
  idleTimeout: duration('900s'),
  /** Time a client has to send the request head. */
  headersTimeout: duration('60s'),
  keepAliveTimeout: duration('65s'),
  /** On SIGTERM/SIGINT: stop accepting, let requests in flight finish for this long, then close. */
  shutdownGrace: duration('30s'),
  /**
   * Client connections open at once before the pressure rules apply (limits.connectionsPerClient,
   * then closing idle connections of the heaviest address); never refused below it.
   */
  maxConnections: z.number().int().min(1).prefault(10_000),
});

/** What a node name may be; the admin API refuses anything else before looking it up. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const nodeSchema = z.strictObject({
  name: z.string({ error: 'expected a node name' }).regex(NODE_NAME, 'expected a name of letters, digits, ".", "_" or "-"'),
  url: httpUrl('an http(s) URL').refine((u) => {
    const p = new URL(u);
    return (p.pathname === '/' || p.pathname === '') && p.search === '' && p.hash === '';
  }, 'expected an origin without a path, such as http://10.0.0.1:80'),
  weight: z.number().int().min(1).max(1000).prefault(1),
  /** PEM bundle of the private CA that signed an https node's certificate (instead of the public roots). */
  ca: z.string().min(1, 'expected the path of a PEM CA bundle').optional(),
});

const tokenSchema = z.strictObject({
  rootCert: z.string().min(1).optional(),
  issuer: z.string().min(1).prefault('harbor-token-issuer'),
  service: z.string().min(1).prefault('harbor-registry'),
  leeway: duration('60s'),
  probe: z
    .strictObject({
      enabled: z.boolean().prefault(true),
      interval: duration('30s'),
      timeout: duration('5s'),
      repository: z.string().min(1).prefault('library/harbor-lb-probe'),
    })
    .prefault({}),
});

const healthSchema = z.strictObject({
  /** Active checks; passive detection works either way. */
  enabled: z.boolean().prefault(true),
  path: z.string().startsWith('/', 'expected a path starting with "/"').prefault('/api/v2.0/health'),
  interval: duration('5s'),
  timeout: duration('2s'),
  healthyAfter: positiveInt(2),
  unhealthyAfter: positiveInt(3),
  requiredComponents: z.array(z.string().min(1)).prefault(['core', 'registry']),
  /**
   * Which routes each Harbor component serves: a node whose component is unhealthy leaves those
   * routes (all five: leaves altogether). A failing component named in neither this nor
   * requiredComponents is ignored.
   */
  componentRoutes: z
    .record(z.string().min(1), z.array(z.enum(ROUTES)))
    .prefault({ registry: ['v2', 'upload'], registryctl: ['v2', 'upload'], core: [...ROUTES], database: [...ROUTES], redis: [...ROUTES] }),
  /** A node whose clock is off by more than this is flagged NODE_CLOCK_SKEW (past token.leeway its token requests go elsewhere). */
  maxClockSkew: duration('5s'),
  passive: z
    .strictObject({
      /** Node-side failures in a row that make harbor-lb check the node at once (only a failed check ejects). */
      consecutiveFailures: positiveInt(1),
      ejectFor: duration('10s'),
      maxEjectFor: duration('5m'),
      /** At most this fraction of the nodes is ejected at once (at least one node may be). */
      maxEjectedFraction: z.number().gt(0).max(1).prefault(1 / 3),
      /** The same 5xx from every node within this window is the cluster's failure, not a node's. */
      clusterWindow: duration('10s'),
    })
    .prefault({}),
});

const balanceSchema = z.strictObject({
  policy: z.enum(['least-requests', 'round-robin']).prefault('least-requests'),
  retries: z
    .strictObject({
      attempts: z.number().int().min(1).max(10).prefault(3),
      /** Cluster-wide: retries may add at most this fraction of the request rate. */
      budget: z.number().min(0).max(1).prefault(0.2),
    })
    .prefault({}),
  /** Below this fraction of nodes available, route over every node that answers instead of the healthy few. */
  panicThreshold: z.number().min(0).max(1).prefault(0.3),
  /** A node back in rotation (or added) ramps from a tenth of its weight to all of it over this window; "0s": off. */
  slowStart: duration('0s', 0),
});

/**
 * Why a Redis URL would not connect where it says, or undefined. ioredis parses it leniently: a
 * port that is not a number or a database path that is not one would be dropped or passed on,
 * and the store would fail at the first command instead of at start. The URL itself (it may hold
 * a password) never goes into the message.
 */
function redisUrlProblem(text: string): string | undefined {
  const authority = /^rediss?:\/\/([^/?#]*)/.exec(text)?.[1];
  if (authority === undefined) return 'expected a redis:// or rediss:// URL';
  const encodeHint = text.includes('@') ? ' (percent-encode / ? # @ % in a password)' : '';
  // The port as written: the URL parser refuses a bad one without saying which part was bad.
  const port = /^(?:\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority.slice(authority.lastIndexOf('@') + 1))?.[1];
  if (port !== undefined && port !== '' && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return `expected a port from 1 to 65535 after the host, such as redis://redis:6379/0${encodeHint}`;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `expected a URL such as redis://:PASSWORD@redis:6379/0${encodeHint}`;
  }
  // Empty or "/" means database 0; anything else must be one number.
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !(/^\d+$/.test(db) && Number.isSafeInteger(Number(db)))) return `expected a database number (0, 1, …) as the path, such as redis://redis:6379/0${encodeHint}`;
  return undefined;
}

const redisSchema = z.strictObject({
  url: z
    .string({ error: 'expected a redis:// or rediss:// URL' })
    .superRefine((text, ctx) => {
      const why = redisUrlProblem(text);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    })
    .prefault('redis://127.0.0.1:6379/0'),
  keyPrefix: z.string().prefault('harbor-lb:'),
  sentinels: z.array(z.strictObject({ host: z.string().min(1), port })).optional(),
  name: z.string().min(1).optional(),
  timeout: duration('50ms'),
});

const stickySchema = z.strictObject({
  store: z.enum(['memory', 'redis']).prefault('memory'),
  redis: redisSchema.optional(),
  keys: z.array(z.enum(['upload', 'session', 'client'])).prefault(['upload', 'session', 'client']),
  ttl: z
    .strictObject({ upload: duration('1h'), session: duration('30m'), client: duration('30m') })
    .prefault({}),
  maxEntries: positiveInt(100_000),
  loadFactor: z.number().min(0).prefault(0.25),
});

/** A DNS name as a Host header carries it (no scheme, port or wildcard), held lower case. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const hostName = z
  .string({ error: 'expected a host name' })
  .transform((name) => name.toLowerCase())
  .refine((name) => HOST_NAME.test(name), 'expected a host name without scheme, port or wildcard, such as harbor-lb-admin.example.com');

const adminSchema = z.strictObject({
  address: address.prefault('127.0.0.1'),
  port: port.prefault(9070),
  token: z.string().min(16, 'expected at least 16 characters').optional(),
  /**
   * Names the admin listener answers to besides IP literals and localhost (without the token):
   * any other name in a Host header could be one an attacker re-points at it (DNS rebinding).
   */
  allowedHosts: z.array(hostName).prefault([]),
});

/**
 * Per-client shares: what one client may hold of the proxy and of the nodes behind it when others
 * want it too. None refuses a client while capacity is free.
 */
const limitsSchema = z.strictObject({
  /**
   * At listen.maxConnections, an address already holding this many connections gets no more (a
   * trusted proxy's address is exempt). 0: no share, idle connections are closed instead.
   */
  connectionsPerClient: z.number().int().min(0).prefault(256),
  /**
   * Requests in flight from one client (address from X-Forwarded-For behind a trusted proxy)
   * above which it waits behind other clients for a node's connections. 0: never.
   */
  requestsPerClient: z.number().int().min(0).prefault(128),
  /**
   * The share of one node's connection budget (each of proxy.maxConnectionsPerNode and
   * proxy.maxUploadConnectionsPerNode) above which a client waits behind others for the next
   * connection, and may not take the last tenth of the budget. 1: no share.
   */
  nodeShare: z.number().gt(0).max(1).prefault(0.25),
  /** How long a request may wait for a node connection before it is answered 503. */
  queueTimeout: duration('30s'),
  /**
   * A body the proxy is waiting on the client for (a request body being sent, a response being
   * read) must move at least this many bytes per second, judged over each `bodyRateWindow` of
   * waiting; the first window is the grace. 0: no minimum.
   */
  minBodyRate: z.number().int().min(0).prefault(1024),
  bodyRateWindow: duration('30s'),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).prefault('info'),
  /** Unset: pretty (one readable line per request) when stdout is a terminal, JSON lines otherwise. */
  format: z.enum(['json', 'pretty']).optional(),
  /** Routing lines go out together, at most this long after the first of them ("0s": at the end of its event-loop turn). */
  batchWindow: duration('20ms', 0).refine((ms) => ms <= 1000, 'expected at most 1s: a routing line held longer is late for whoever tails the log'),
});

/** Where Node's listen({ reusePort }) works (its documentation: Linux 3.9+, FreeBSD 12+, DragonFly, Solaris 11.4, AIX 7.2.5). */
const REUSE_PORT_SYSTEMS: readonly string[] = ['linux', 'freebsd', 'sunos', 'aix'];

/** Whether workers can share the port on `platform` (connectionBalance kernel needs it). */
const workersShareThePort = (platform: string): boolean => REUSE_PORT_SYSTEMS.includes(platform);

const coalesceSchema = z.strictObject({
  /** Identical blob pulls share one node read: off by default (every pull is then teed to a spill file and hashed). */
  enabled: z.boolean().prefault(false),
  /** Where spill files go; a folder of its own per process is made under it. Default: the system's temporary folder. */
  dir: z.string().min(1).optional(),
});

const byteSize = (fallback: string) =>
  z
    .union([z.number().int().nonnegative(), z.string()], { error: 'expected a size such as "10GiB"' })
    .transform((v, ctx) => {
      const bytes = typeof v === 'number' ? v : parseByteSize(v);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a size such as "10GiB" or "500MB", got "${v}"` });
        return z.NEVER;
      }
      return bytes;
    })
    .prefault(fallback);

const cacheSchema = z.strictObject({
  /** The blob cache's folder: set, blobs fully read and verified are kept there by digest (off when unset). */
  dir: z.string().min(1).optional(),
  /** Past this, the least recently used blobs go. */
  maxSize: byteSize('10GiB'),
});

const proxySchema = z.strictObject({
  connectTimeout: duration('5s'),
  /** Time a node has to start answering a request without a body (GET, HEAD, DELETE). */
  headersTimeout: duration('60s'),
  /** The same for requests with a body: a registry answers a blob PUT only once it has stored it. */
  uploadHeadersTimeout: duration('900s'),
  /** A node response body idle for this long is cut: an idle timeout, never a total one. */
  idleTimeout: duration('900s'),
  /** Connections per node for requests without a streamed body (pulls, tokens, UI). */
  maxConnectionsPerNode: positiveInt(128),
  /** A separate budget per node for streamed request bodies (uploads), so slow uploads never starve pulls. */
  maxUploadConnectionsPerNode: positiveInt(128),
  /**
   * Request workers: processes that serve the client connections, beside one control plane
   * (checks, probes, node state, admin). 1: one process does it all. Default: defaultWorkers.
   */
  workers: z.number().int().min(1).max(256).optional(),
  /**
   * How new client connections reach request workers. least-connections: the control plane
   * accepts each and hands it to the worker holding the fewest (a few long pulls spread evenly).
   * kernel: every worker binds the port and the kernel picks one by a hash of the addresses.
   */
  connectionBalance: z.enum(['least-connections', 'kernel']).prefault('least-connections'),
  /**
   * A request worker that does not answer the control plane for this long (its event loop stuck: an
   * endless loop, SIGSTOP) is killed and replaced; 0s: never. Silent for 2 s it already gets no
   * new connections and does not count for readiness.
   */
  workerStallTimeout: duration('10s', 0),
}).transform((p) => ({ ...p, workers: p.workers ?? defaultWorkers(process.platform, p.connectionBalance, availableParallelism()) }));

/**
 * Request workers unless proxy.workers says: the cores this process may use, unless the workers
 * are to share the port (connectionBalance kernel) where the system cannot let several processes
 * do so (SO_REUSEPORT: not macOS, not Windows); there 1. Handed their connections by the control
 * plane (least-connections), workers need no such thing.
 */
export function defaultWorkers(platform: string, balance: 'least-connections' | 'kernel', cores: number): number {
  return balance === 'kernel' && !workersShareThePort(platform) ? 1 : cores;
}

const doctorSchema = z.strictObject({
  /** A Harbor user that may push to `repository`: enables the upload check (differing http.secret). */
  credentials: z.strictObject({ username: z.string().min(1), password: z.string().min(1) }).optional(),
  repository: z.string().min(1).prefault('library/harbor-lb-doctor'),
  timeout: duration('5s'),
  /** With credentials, harbor-lb serve runs the upload check too: once two nodes take traffic, then this often ("0s": never). */
  uploadCheckInterval: duration('5m', 0),
});

export const configSchema = z
  .strictObject({
    listen: listenSchema.prefault({}),
    // Realms and Location headers are rewritten to this origin; a path there would be dropped silently.
    publicUrl: httpUrl('an http(s) URL such as https://hub.example.com')
      .refine((u) => {
        const p = new URL(u);
        return p.pathname === '/' && p.search === '' && p.hash === '';
      }, 'expected an origin without a path, query or fragment, such as https://hub.example.com')
      .optional(),
    nodes: z.array(nodeSchema, { error: 'expected a list of nodes' }).min(1, 'expected at least one node'),
    token: tokenSchema.prefault({}),
    health: healthSchema.prefault({}),
    balance: balanceSchema.prefault({}),
    sticky: stickySchema.prefault({}),
    admin: adminSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    log: logSchema.prefault({}),
    proxy: proxySchema.prefault({}),
    coalesce: coalesceSchema.prefault({}),
    cache: cacheSchema.prefault({}),
    doctor: doctorSchema.prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, number>();
    cfg.nodes.forEach((node, i) => {
      // A CA on an http:// node is never used: most likely the scheme is the mistake.
      if (node.ca !== undefined && new URL(node.url).protocol !== 'https:') {
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'ca'], message: `only for https:// nodes (nodes[${i}].url is ${node.url})` });
      }
      const first = seen.get(node.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'name'], message: `duplicate node name "${node.name}" (also nodes[${first}])` });
      } else seen.set(node.name, i);
    });
    if (cfg.sticky.store === 'redis' && cfg.sticky.redis === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sticky', 'redis'], message: 'required when sticky.store is redis' });
    }
    const passive = cfg.health.passive;
    if (passive.ejectFor > passive.maxEjectFor) {
      ctx.addIssue({
        code: 'custom',
        path: ['health', 'passive', 'ejectFor'],
        message: `must not exceed health.passive.maxEjectFor (${passive.ejectFor} ms > ${passive.maxEjectFor} ms): the back-off starts at ejectFor and doubles up to maxEjectFor`,
      });
    }
    // Drain and undrain need no token when none is set: fine on loopback, an open door anywhere else.
    if (cfg.admin.token === undefined && !isLoopback(cfg.admin.address)) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'token'],
        message: `required when admin.address (${cfg.admin.address}) is not a loopback address: set a token of at least 16 characters, e.g. \${HARBOR_LB_ADMIN_TOKEN}`,
      });
    }
    if (cfg.proxy.connectionBalance === 'kernel' && cfg.proxy.workers > 1 && !workersShareThePort(process.platform)) {
      ctx.addIssue({
        code: 'custom',
        path: ['proxy', 'connectionBalance'],
        message: `kernel needs workers to share the port (SO_REUSEPORT), which ${process.platform} cannot: use least-connections, or proxy.workers: 1`,
      });
    }
    if (cfg.admin.port !== 0 && cfg.admin.port === cfg.listen.port && cfg.admin.address === cfg.listen.address) {
      ctx.addIssue({ code: 'custom', path: ['admin', 'port'], message: 'must differ from listen.port: the admin API never shares the traffic port' });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;
/** The validated configuration, defaults applied; `publicUrl` always set. */
export type Config = Omit<Parsed, 'publicUrl'> & { publicUrl: string };
export type NodeConfig = Config['nodes'][number];
