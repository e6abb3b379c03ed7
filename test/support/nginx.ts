import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startProcess, type RunningProcess } from './processes.js';
import { freePort } from './servers.js';

/** nginx's timeouts (nginx syntax: "2s", "900s"); unset ones are Harbor's. */
export interface NginxTimeouts {
  /** Longest pause between two writes to a client that does not read; Harbor leaves nginx's default, 60s. */
  sendTimeout?: string;
  /** Longest pause between two reads of a client's request body; Harbor leaves nginx's default, 60s. */
  clientBodyTimeout?: string;
  /** Longest pause between two reads of the upstream's answer; Harbor: 900s on /v2/ and /api/. */
  proxyReadTimeout?: string;
  /** Longest pause between two writes of the request to the upstream; Harbor: 900s on /v2/ and /api/. */
  proxySendTimeout?: string;
}

export interface NginxOptions extends NginxTimeouts {
  /** A folder of its own: config, pid file, temp paths and access log go there. */
  dir: string;
  /** The one upstream everything is proxied to, such as http://127.0.0.1:PORT (a Harbor core). */
  upstream: string;
  /** The port to listen on (loopback); a free one by default. */
  port?: number;
}

export interface RunningNginx {
  url: string;
  port: number;
  process: RunningProcess;
  /** Readiness attempts (TCP connect + HTTP answer) it took after the master said it started its workers. */
  readyAttempts: number;
  /**
   * Resolves with the `nth` (default first) error-log line (stderr, level info) matching `re`,
   * already written or still to come; rejects after `timeoutMs` without it.
   */
  waitForLog(re: RegExp, timeoutMs: number, nth?: number): Promise<string>;
  /** Error-log lines matching `re` so far. */
  logLines(re: RegExp): string[];
  /** Access-log lines so far (nginx's "combined" format: request line, then status and body bytes sent). */
  accessLog(): string[];
  stop(): Promise<void>;
}

/** A path nginx answers itself (204), for readiness; everything else goes to the upstream. */
export const NGINX_READY_PATH = '/-/nginx-ready';

/**
 * The nginx that stands in front of every Harbor node, as Harbor's own nginx.http.conf sets it up
 * for /v2/, /api/, /service/ and /c/: HTTP/1.1 to the upstream (without keep-alive, Harbor's
 * upstream blocks have none), no buffering either way, no body size limit, Host with its port
 * ($http_host) and X-Real-IP, X-Forwarded-For, X-Forwarded-Proto. One location proxies everything
 * to the one upstream without a URI part, so the request URI reaches it as sent.
 */
export function nginxConfig(o: NginxOptions & { port: number }): string {
  const d = o.dir;
  const upstream = new URL(o.upstream);
  return `worker_processes 1;
${process.getuid?.() === 0 ? 'user root root;' : ''}
pid ${d}/nginx.pid;
error_log stderr info;
events {
  worker_connections 1024;
}
http {
  client_body_temp_path ${d}/client_body_temp;
  proxy_temp_path ${d}/proxy_temp;
  fastcgi_temp_path ${d}/fastcgi_temp;
  uwsgi_temp_path ${d}/uwsgi_temp;
  scgi_temp_path ${d}/scgi_temp;
  access_log ${d}/access.log;
  tcp_nodelay on;
  # Harbor: "this is necessary for us to be able to disable request buffering in all cases"
  proxy_http_version 1.1;
  upstream node {
    server ${upstream.hostname}:${upstream.port};
  }
  map $http_x_forwarded_proto $x_forwarded_proto {
    default $http_x_forwarded_proto;
    ""      $scheme;
  }
  server {
    listen 127.0.0.1:${o.port};
    server_tokens off;
    # Harbor: "disable any limits to avoid HTTP 413 for large image uploads"
    client_max_body_size 0;
    send_timeout ${o.sendTimeout ?? '60s'};
    client_body_timeout ${o.clientBodyTimeout ?? '60s'};
    location = ${NGINX_READY_PATH} {
      return 204;
    }
    location / {
      proxy_pass http://node;
      proxy_set_header Host $http_host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $x_forwarded_proto;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_send_timeout ${o.proxySendTimeout ?? '900s'};
      proxy_read_timeout ${o.proxyReadTimeout ?? '900s'};
    }
  }
}
`;
}

/** One readiness attempt: connect, ask NGINX_READY_PATH, true on an HTTP status line; false when refused or cut. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(`GET ${NGINX_READY_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    let text = '';
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', () => resolve(false));
    sock.on('close', () => resolve(/^HTTP\/1\.1 \d{3} /.test(text)));
  });
}

/**
 * Starts /usr/sbin/nginx in the foreground (daemon off) with its error log on stderr at level
 * info, where it says when it gives up on a client ("client timed out"). Ready once the master
 * has said it started its workers (its sockets are bound by then) and a connection gets an HTTP
 * answer; `readyAttempts` says how many tries that took (at most 20, retried on the failure itself,
 * never after a sleep). Stop it with stop() (SIGTERM: nginx's fast shutdown, workers included).
 */
export async function startNginx(o: NginxOptions): Promise<RunningNginx> {
  mkdirSync(o.dir, { recursive: true });
  const port = o.port ?? (await freePort());
  const conf = join(o.dir, 'nginx.conf');
  const accessLog = join(o.dir, 'access.log');
  writeFileSync(conf, nginxConfig({ ...o, port }));
  // -e: the log nginx writes before it has read its config (it would open /var/log/nginx/error.log).
  const proc = await startProcess('/usr/sbin/nginx', ['-p', o.dir, '-c', conf, '-e', 'stderr', '-g', 'daemon off;'], /start worker process \d+/);
  let attempts = 0;
  try {
    while (!(await answers(port))) {
      if (++attempts >= 20) throw new Error(`nginx on port ${port} gave no HTTP answer after ${attempts} attempts:\n${proc.output()}`);
    }
    attempts++;
  } catch (err) {
    await proc.stop();
    throw err;
  }
  const logLines = (re: RegExp) => proc.output().split('\n').filter((l) => re.test(l));
  const waiters: Array<{ re: RegExp; nth: number; resolve: (line: string) => void }> = [];
  proc.child.stderr!.on('data', () => {
    // startProcess's own listener came first: output() holds this chunk already.
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      const line = logLines(w.re)[w.nth - 1];
      if (line !== undefined) waiters.splice(i, 1)[0]!.resolve(line);
    }
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    process: proc,
    readyAttempts: attempts,
    logLines,
    // nginx writes a request's line when it finalizes it, before it closes the connection.
    accessLog: () => (existsSync(accessLog) ? readFileSync(accessLog, 'utf8').split('\n').filter((l) => l !== '') : []),
    waitForLog(re, timeoutMs, nth = 1) {
      const already = logLines(re)[nth - 1];
      if (already !== undefined) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`nginx logged ${re} ${logLines(re).length} time(s) within ${timeoutMs} ms, not ${nth}:\n${proc.output()}`));
        }, timeoutMs);
        const waiter = {
          re,
          nth,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiters.push(waiter);
      });
    },
    stop: () => proc.stop(),
  };
}
