/**
 * Configuration files of the backends and the contenders. Paths a client asks for are shaped like
 * the registry API, so harbor-lb classifies them as it would real traffic (manifest and blob GETs
 * are `v2`, PUTs are `upload`, /service/token is `token`).
 */

export const REPO = 'library/bench';
export const MANIFEST_PATH = `/v2/${REPO}/manifests/latest`;
export const blobPath = (hex: string) => `/v2/${REPO}/blobs/sha256:${hex}`;
export const uploadPath = (uuid: string, hex: string) => `/v2/${REPO}/blobs/uploads/${uuid}?digest=sha256:${hex}`;
export const TOKEN_PATH = `/service/token?service=harbor-registry&scope=repository:${REPO}:pull`;

const ECHO_MODULE = '/usr/lib/nginx/modules/ngx_http_echo_module.so';

export interface BackendOpts {
  name: string;
  port: number;
  work: string;
  /** Folder for request bodies being read (tmpfs when there is one). */
  bodyTemp: string;
  www: string;
  blobHex: string;
}

/**
 * One backend: nginx, one worker. Serves the 2 KiB manifest, the 64 MiB blob (sendfile) and the
 * static token; reads every upload body to its end before answering 201, as a registry answers a
 * blob PUT only once it has the blob (nginx's own `return 201` would answer first and discard the
 * body afterwards, which lets a proxy stop forwarding early). No size limit on bodies.
 */
export function backendNginx(o: BackendOpts): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${o.work}/${o.name}.pid;
error_log ${o.work}/logs/${o.name}-error.log warn;
load_module ${ECHO_MODULE};
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  default_type application/octet-stream;
  client_body_temp_path ${o.bodyTemp}/${o.name}-body;
  proxy_temp_path ${o.work}/tmp/${o.name}-proxy;
  fastcgi_temp_path ${o.work}/tmp/${o.name}-fastcgi;
  uwsgi_temp_path ${o.work}/tmp/${o.name}-uwsgi;
  scgi_temp_path ${o.work}/tmp/${o.name}-scgi;
  server {
    listen 127.0.0.1:${o.port} backlog=4096;
    location = ${MANIFEST_PATH} { default_type application/vnd.oci.image.manifest.v1+json; alias ${o.www}/manifest.json; }
    location = ${blobPath(o.blobHex)} { alias ${o.www}/blob.bin; }
    location ^~ /v2/${REPO}/blobs/uploads/ {
      client_max_body_size 0;
      client_body_buffer_size 1m;
      echo_read_request_body;
      echo_status 201;
      echo_flush;
    }
    location = /service/token { default_type application/json; alias ${o.www}/token.json; }
    location = /v2/ { default_type application/json; return 200 '{}'; }
  }
}
`;
}

export interface ProxyOpts {
  port: number;
  work: string;
  backends: number[];
}

/** nginx as a proxy, tuned as operators do: upstream keep-alive, 64 KiB buffers, bodies streamed both ways. */
export function proxyNginx(o: ProxyOpts): string {
  return `daemon off;
master_process on;
worker_processes auto;
pid ${o.work}/nginx-proxy.pid;
error_log ${o.work}/logs/nginx-proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${o.work}/tmp/proxy-body;
  proxy_temp_path ${o.work}/tmp/proxy-proxy;
  fastcgi_temp_path ${o.work}/tmp/proxy-fastcgi;
  uwsgi_temp_path ${o.work}/tmp/proxy-uwsgi;
  scgi_temp_path ${o.work}/tmp/proxy-scgi;
  upstream harbor {
${o.backends.map((p) => `    server 127.0.0.1:${p} max_fails=3 fail_timeout=10s;`).join('\n')}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${o.port} backlog=4096;
    client_max_body_size 0;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_buffer_size 64k;
    proxy_buffers 8 64k;
    proxy_busy_buffers_size 128k;
    proxy_request_buffering off;
    proxy_max_temp_file_size 0;
    proxy_read_timeout 900s;
    proxy_send_timeout 900s;
    location / { proxy_pass http://harbor; }
  }
}
`;
}

/** haproxy 2.6: round robin, keep-alive on both sides with connection reuse, active health checks. */
export function haproxyCfg(o: ProxyOpts & { checkPath: string; threads: number }): string {
  return `global
  maxconn 4096
  nbthread ${o.threads}
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 900s
  timeout server 900s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:${o.port}
  default_backend be
backend be
  balance roundrobin
  option httpchk
  http-check send meth GET uri ${o.checkPath}
  http-check expect status 200
  default-server check inter 2s fall 3 rise 2
${o.backends.map((p, i) => `  server n${i + 1} 127.0.0.1:${p}`).join('\n')}
`;
}

/** `node` arguments that run harbor-lb serve on `conf` as the container does (Dockerfile's ENTRYPOINT). */
export const serveArgs = (cli: string, conf: string): string[] => ['--max-semi-space-size=16', cli, 'serve', '--config', conf];

export interface HarborLbOpts {
  port: number;
  adminPort: number;
  backends: number[];
  /** token.rootCert, or none: no token section (verification off). */
  rootCert?: string;
  store: 'memory' | 'redis';
  /** proxy.workers; the default (the usable cores) when not given. */
  workers?: number;
  /** proxy.connectionBalance; the default (least-connections) when not given. */
  connectionBalance?: 'least-connections' | 'kernel';
  redisPort?: number;
}

/** harbor-lb as shipped: defaults everywhere except the addresses, the health path and the token key. */
export function harborLbYaml(o: HarborLbOpts): string {
  const lines = [
    `listen: {address: 127.0.0.1, port: ${o.port}}`,
    `publicUrl: http://127.0.0.1:${o.port}`,
    'nodes:',
    ...o.backends.map((p, i) => `  - {name: n${i + 1}, url: "http://127.0.0.1:${p}"}`),
  ];
  if (o.rootCert !== undefined) lines.push(`token: {rootCert: "${o.rootCert}", issuer: harbor-token-issuer, service: harbor-registry}`);
  lines.push(`health: {path: "${MANIFEST_PATH}", interval: 2s}`);
  const proxy = [o.workers !== undefined ? `workers: ${o.workers}` : '', o.connectionBalance !== undefined ? `connectionBalance: ${o.connectionBalance}` : ''].filter((x) => x !== '');
  if (proxy.length > 0) lines.push(`proxy: {${proxy.join(', ')}}`);
  lines.push(o.store === 'redis' ? `sticky: {store: redis, redis: {url: "redis://127.0.0.1:${o.redisPort}/0"}}` : 'sticky: {store: memory}');
  lines.push(`admin: {address: 127.0.0.1, port: ${o.adminPort}}`, 'log: {level: info}', '');
  return lines.join('\n');
}
