import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import perfHooks from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { methodLabel, METHODS, ROUTES, STATUS_CLASSES, statusClassLabel } from '../../src/admin/metric-labels.js';
import { startApp } from '../support/app.js';
import { startFromFile } from '../support/file-app.js';
import { FakeClock } from '../support/fake-clock.js';
import { send } from '../support/http-client.js';
import { parseExposition, samplesOf, type Family, type Sample } from '../support/prometheus-text.js';
import { rawRequest } from '../support/raw-http.js';
import { startServer, type TestServer } from '../support/servers.js';
import { makeTempDir } from '../support/tmp.js';

const BLOB = Buffer.alloc(1000, 7);

/**
 * Two nodes that answer like a small registry: blobs, a missing manifest (404), manifest PUTs,
 * and one blob whose first request (on whichever node gets it) is a 503, so it is retried.
 */
async function startNodes(): Promise<{ nodes: TestServer[]; failedOn: () => string | undefined }> {
  let flaky: string | undefined;
  const node = (name: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? '';
    req.resume();
    if (url.endsWith('/blobs/sha256:flaky') && flaky === undefined) {
      flaky = name;
      res.writeHead(503);
      return void res.end('busy');
    }
    if (url.includes('/manifests/missing')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    }
    if (req.method === 'PUT') return void req.on('end', () => res.writeHead(201).end());
    if (url.includes('/blobs/')) {
      res.writeHead(200, { 'content-length': BLOB.length });
      return void res.end(req.method === 'HEAD' ? undefined : BLOB);
    }
    res.end('{}');
  };
  const nodes = [await startServer(node('n1')), await startServer(node('n2'))];
  return { nodes, failedOn: () => flaky };
}

async function scrape(adminUrl: string): Promise<{ families: Family[]; contentType: string | undefined }> {
  const reply = await send(`${adminUrl}/metrics`);
  assert.equal(reply.status, 200);
  return { families: await parseExposition(reply.body.toString()), contentType: reply.headers['content-type'] };
}

/** Label sets of a histogram's series (its labels without `le`), each checked for a complete, consistent set of samples. */
function histogramSeries(families: Family[], name: string): Map<string, { labels: Record<string, string>; count: number; sum: number }> {
  const family = families.find((f) => f.name === name);
  assert.ok(family, `${name} is exposed`);
  assert.equal(family.type, 'histogram');
  const series = new Map<string, { labels: Record<string, string>; count: number; sum: number }>();
  for (const s of family.samples.filter((x) => x.name === `${name}_count`)) {
    const key = JSON.stringify(s.labels);
    const buckets: Sample[] = family.samples.filter((x) => x.name === `${name}_bucket` && JSON.stringify({ ...x.labels, le: undefined }) === JSON.stringify({ ...s.labels, le: undefined }));
    const inf = buckets.find((b) => b.labels.le === '+Inf');
    assert.ok(inf, `${name}${key} has le="+Inf"`);
    assert.equal(inf.value, s.value, `${name}${key}: the +Inf bucket equals _count`);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${name}${key}: buckets are cumulative`);
    assert.ok(buckets.length >= 15, `${name}${key}: buckets from 1 ms to minutes`);
    const sum = family.samples.find((x) => x.name === `${name}_sum` && JSON.stringify(x.labels) === key);
    assert.ok(sum, `${name}${key} has _sum`);
    series.set(key, { labels: s.labels, count: s.value, sum: sum.value });
  }
  return series;
}

const total = (samples: Array<{ value: number }>) => samples.reduce((n, s) => n + s.value, 0);

describe('/metrics', () => {
  it('counts requests by route, node, method and status class as the routing log does, with latency histograms, node gauges and process metrics', async (t) => {
    const { nodes, failedOn } = await startNodes();
    const lb = await startApp(
      nodes.map((n) => n.url),
      { balance: { policy: 'round-robin' } },
    );
    t.after(async () => {
      await lb.close();
      await Promise.all(nodes.map((n) => n.close()));
    });

    const sent: Array<[string, string, string?]> = [
      ['GET', '/v2/'],
      ['GET', '/v2/lib/app/blobs/sha256:aaa'],
      ['HEAD', '/v2/lib/app/blobs/sha256:aaa'],
      ['GET', '/v2/lib/app/manifests/missing'],
      ['GET', '/v2/lib/app/blobs/sha256:flaky'],
      ['PUT', '/v2/lib/app/manifests/v1', 'm'.repeat(50)],
      ['GET', '/service/token?service=harbor-registry&scope=repository:lib/app:pull'],
      // Refused by harbor-lb itself (a malformed escape): no node.
      ['GET', '/v2/lib/%zz/manifests/x'],
    ];
    const statuses: number[] = [];
    for (const [method, path, body] of sent) statuses.push((await send(`${lb.url}${path}`, { method, body })).status);
    assert.deepEqual(statuses, [200, 200, 200, 404, 200, 201, 200, 400]);
    const lines = await lb.logs.waitForRequests(sent.length);

    const { families, contentType } = await scrape(lb.adminUrl);
    assert.equal(contentType, Registry.PROMETHEUS_CONTENT_TYPE);

    // The request counter says what the routing lines say, series by series.
    const expected = new Map<string, number>();
    for (const l of lines) {
      const key = JSON.stringify({ route: l.route, node: l.node ?? '', method: methodLabel(String(l.method)), status_class: statusClassLabel(Number(l.status)) });
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    const counted = new Map(samplesOf(families, 'harbor_lb_requests_total').map((s) => [JSON.stringify(s.labels), s.value]));
    assert.deepEqual(counted, expected);
    // And what was sent, whichever node took it.
    const requests = (labels: Record<string, string>) => total(samplesOf(families, 'harbor_lb_requests_total', labels));
    assert.equal(requests({}), sent.length);
    assert.equal(requests({ route: 'v2', method: 'GET', status_class: '2xx' }), 3);
    assert.equal(requests({ route: 'v2', method: 'HEAD', status_class: '2xx' }), 1);
    assert.equal(requests({ route: 'v2', method: 'GET', status_class: '4xx' }), 1);
    assert.equal(requests({ route: 'v2', method: 'PUT', status_class: '2xx' }), 1);
    assert.equal(requests({ route: 'token', method: 'GET', status_class: '2xx' }), 1);
    assert.equal(requests({ route: 'other', node: '', method: 'GET', status_class: '4xx' }), 1, 'the refused request has no node');

    // The 503 was retried on the other node: one retry, from the node that failed it.
    assert.deepEqual(
      samplesOf(families, 'harbor_lb_retries_total').map((s) => [s.labels, s.value]),
      [[{ route: 'v2', node: failedOn()!, reason: 'retried', cause: 'gateway_error' }, 1]],
    );

    // Bytes: what the routing lines counted.
    assert.equal(total(samplesOf(families, 'harbor_lb_request_body_bytes_total')), 50);
    assert.equal(total(samplesOf(families, 'harbor_lb_response_body_bytes_total')), lines.reduce((n, l) => n + Number(l.bytesOut), 0));
    assert.ok(total(samplesOf(families, 'harbor_lb_response_body_bytes_total', { route: 'v2' })) >= 2 * BLOB.length);

    // Histograms: every series complete; one observation per request, one per attempt.
    const duration = histogramSeries(families, 'harbor_lb_request_duration_seconds');
    assert.equal([...duration.values()].reduce((n, s) => n + s.count, 0), sent.length);
    assert.equal(duration.get(JSON.stringify({ route: 'token' }))?.count, 1);
    const attempts = total(samplesOf(families, 'harbor_lb_node_requests_total'));
    assert.equal(attempts, sent.length, 'seven forwarded, one retried, one refused before any node');
    const upstream = histogramSeries(families, 'harbor_lb_upstream_duration_seconds');
    assert.equal([...upstream.values()].reduce((n, s) => n + s.count, 0), attempts);
    const firstByte = histogramSeries(families, 'harbor_lb_upstream_first_byte_seconds');
    assert.equal([...firstByte.values()].reduce((n, s) => n + s.count, 0), attempts, 'every attempt got a response head, the 503 too');
    for (const [key, s] of firstByte) assert.ok(s.sum <= upstream.get(key)!.sum, `${key}: the head comes no later than the end`);
    for (const s of upstream.values()) assert.ok(['n1', 'n2'].includes(s.labels.node!) && ROUTES.includes(s.labels.route as never));

    // Node gauges: one state each, read from the nodes (health checks are off here: unknown).
    for (const node of ['n1', 'n2']) {
      const states = samplesOf(families, 'harbor_lb_node_state', { node });
      assert.equal(states.length, 5);
      assert.deepEqual(states.filter((s) => s.value === 1).map((s) => s.labels.state), ['unknown']);
      assert.equal(samplesOf(families, 'harbor_lb_node_inflight', { node })[0]?.value, 0);
    }
    assert.equal(samplesOf(families, 'harbor_lb_node_failures_total', { node: failedOn()! })[0]?.value, 1);
    assert.equal(samplesOf(families, 'harbor_lb_panic')[0]?.value, 0);
    assert.equal(samplesOf(families, 'harbor_lb_cluster_degraded')[0]?.value, 0);
    assert.deepEqual(samplesOf(families, 'harbor_lb_sticky_lookups_total', { result: 'miss' }).map((s) => [s.labels.kind, s.value]), [['upload', 0]]);

    // prom-client's process and Node.js metrics, in the app's own registry.
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.equal(samplesOf(families, name).length, 1, `${name} is exposed`);
    }
    assert.ok(samplesOf(families, 'process_resident_memory_bytes')[0]!.value > 0);
  });

  it('keeps two apps in one process apart, and each app stops its runtime monitors on close', async (t) => {
    // What prom-client's default metrics start, per app: the event-loop-delay monitor and the GC observer.
    const started: Array<{ monitors: Array<ReturnType<typeof perfHooks.monitorEventLoopDelay>>; observers: Array<{ disconnected: boolean }> }> = [];
    const { monitorEventLoopDelay, PerformanceObserver } = perfHooks;
    const watch = () => {
      const seen: (typeof started)[number] = { monitors: [], observers: [] };
      started.push(seen);
      perfHooks.monitorEventLoopDelay = (o) => {
        const h = monitorEventLoopDelay(o);
        seen.monitors.push(h);
        return h;
      };
      perfHooks.PerformanceObserver = class extends PerformanceObserver {
        readonly #seen = { disconnected: false };
        constructor(cb: ConstructorParameters<typeof PerformanceObserver>[0]) {
          super(cb);
          seen.observers.push(this.#seen);
        }
        override disconnect(): void {
          this.#seen.disconnected = true;
          super.disconnect();
        }
      };
    };
    const unwatch = () => {
      perfHooks.monitorEventLoopDelay = monitorEventLoopDelay;
      perfHooks.PerformanceObserver = PerformanceObserver;
    };

    const node = await startServer((_q, r) => r.end('{}'));
    t.after(() => node.close());
    watch();
    const a = await startApp([node.url]).finally(unwatch);
    watch();
    const b = await startApp([node.url]).finally(unwatch);
    t.after(() => Promise.all([a.close(), b.close()]));
    for (let i = 0; i < 3; i++) await send(`${a.url}/v2/`);
    await send(`${b.url}/v2/`);
    await a.logs.waitForRequests(3);
    await b.logs.waitForRequests(1);

    const [ma, mb] = await Promise.all([scrape(a.adminUrl), scrape(b.adminUrl)]);
    assert.equal(total(samplesOf(ma.families, 'harbor_lb_requests_total')), 3);
    assert.equal(total(samplesOf(mb.families, 'harbor_lb_requests_total')), 1);
    assert.equal(samplesOf(ma.families, 'harbor_lb_node_requests_total', { node: 'n1' })[0]?.value, 3);
    assert.equal(samplesOf(mb.families, 'harbor_lb_node_requests_total', { node: 'n1' })[0]?.value, 1);
    assert.equal(histogramSeries(mb.families, 'harbor_lb_request_duration_seconds').get(JSON.stringify({ route: 'v2' }))?.count, 1);

    const [ofA, ofB] = started;
    assert.ok(ofA!.monitors.length > 0 && ofA!.observers.length > 0, 'the default metrics started a monitor and an observer');
    await a.close();
    assert.deepEqual(
      ofA!.monitors.map((h) => h.disable()),
      ofA!.monitors.map(() => false),
      "app A's event-loop monitor was stopped by its close()",
    );
    assert.ok(ofA!.observers.every((o) => o.disconnected), "app A's GC observer was disconnected");
    assert.deepEqual(
      ofB!.monitors.map((h) => h.enable()),
      ofB!.monitors.map(() => false),
      "app B's monitor still runs",
    );
    assert.ok(ofB!.observers.every((o) => !o.disconnected));
    assert.equal(total(samplesOf((await scrape(b.adminUrl)).families, 'harbor_lb_requests_total')), 1, 'B scrapes on after A closed');
  });

  it('labels methods and routes from closed sets: odd methods and paths cannot add series or break the exposition', async (t) => {
    const node = await startServer((req, res) => {
      req.resume();
      res.end('{}');
    });
    const lb = await startApp([node.url]);
    t.after(async () => {
      await lb.close();
      await node.close();
    });
    const odd = ['PROPFIND', 'PURGE', 'M-SEARCH', 'OPTIONS', 'MKCOL'];
    for (const method of odd) {
      await rawRequest(lb.url, `${method} /v2/a"b\\c/manifests/%0a%22x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    }
    await rawRequest(lb.url, `GET /v2/"quoted"\\/tags/list?n=%0A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const lines = await lb.logs.waitForRequests(odd.length + 1);

    const { families } = await scrape(lb.adminUrl);
    const samples = samplesOf(families, 'harbor_lb_requests_total');
    assert.equal(total(samples), lines.length);
    for (const s of samples) {
      assert.ok(METHODS.includes(s.labels.method as never), `method ${s.labels.method}`);
      assert.ok(ROUTES.includes(s.labels.route as never), `route ${s.labels.route}`);
      assert.ok(STATUS_CLASSES.includes(s.labels.status_class as never), `status class ${s.labels.status_class}`);
      assert.ok(s.labels.node === '' || s.labels.node === 'n1');
    }
    assert.equal(total(samples.filter((s) => s.labels.method === 'OTHER')), odd.length);
    assert.equal(total(samples.filter((s) => s.labels.method === 'GET')), 1);
  });

  it('follows a config reload: an added node gets its series, a removed one loses its gauges once it has left', async (t) => {
    const tmp = makeTempDir('metrics-reload');
    const servers = await Promise.all([1, 2, 3].map(() => startServer((req, res) => (req.resume(), res.end('{}')))));
    const file = join(tmp.dir, 'harbor-lb.yaml');
    const write = (names: number[]) =>
      writeFileSync(
        file,
        [
          'listen: {address: 127.0.0.1, port: 0}',
          'admin: {address: 127.0.0.1, port: 0}',
          'nodes:',
          ...names.map((i) => `  - {name: n${i}, url: "${servers[i - 1]!.url}"}`),
          'health: {enabled: false}',
          'balance: {policy: round-robin}',
          'sticky: {keys: [upload], ttl: {upload: 30s}}',
          'log: {level: info}',
        ].join('\n'),
      );
    write([1, 2]);
    const clock = new FakeClock(Date.now());
    const { app, logs, proxyUrl, adminUrl } = await startFromFile(file, { clock });
    t.after(async () => {
      await app.close(0);
      await Promise.all(servers.map((s) => s.close()));
      tmp.remove();
    });
    for (let i = 0; i < 4; i++) await send(`${proxyUrl}/v2/`);
    await logs.waitForRequests(4);
    const nodesIn = async (name: string) => [...new Set(samplesOf((await scrape(adminUrl)).families, name).map((s) => s.labels.node))].sort();
    assert.deepEqual(await nodesIn('harbor_lb_node_state'), ['n1', 'n2']);

    write([1, 3]);
    assert.equal(app.reload().ok, true);
    const during = (await scrape(adminUrl)).families;
    assert.deepEqual([...new Set(samplesOf(during, 'harbor_lb_node_state').map((s) => s.labels.node))].sort(), ['n1', 'n2', 'n3'], 'n2 drains before it leaves');
    assert.equal(samplesOf(during, 'harbor_lb_node_state', { node: 'n2', state: 'draining' })[0]?.value, 1);

    const left = logs.waitFor((l) => l.event === 'node_removed' && l.node === 'n2', 5000, 'node_removed');
    clock.advance(31_000);
    await left;
    const after = (await scrape(adminUrl)).families;
    for (const name of ['harbor_lb_node_state', 'harbor_lb_node_inflight', 'harbor_lb_node_requests_total', 'harbor_lb_node_ejections', 'harbor_lb_health_checks_total']) {
      assert.deepEqual([...new Set(samplesOf(after, name).map((s) => s.labels.node))].sort(), ['n1', 'n3'], name);
    }
    // Request counters keep what n2 answered: a counter does not go back.
    assert.equal(total(samplesOf(after, 'harbor_lb_requests_total', { node: 'n2' })), 2);
  });
});
