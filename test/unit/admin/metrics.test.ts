import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { methodLabel, statusClassLabel } from '../../../src/admin/metric-labels.js';
import { createMetrics, type Metrics } from '../../../src/admin/metrics.js';
import { SeriesHistogram } from '../../../src/admin/series-histogram.js';
import { validateConfig } from '../../../src/config/load.js';
import { NodeHealth } from '../../../src/health/node-health.js';
import { OutlierDetector } from '../../../src/health/outlier-detector.js';
import { createLoggers } from '../../../src/log/loggers.js';
import type { ClusterNode } from '../../../src/nodes/node.js';
import { NodeSet } from '../../../src/nodes/node-set.js';
import { MemoryPinStore } from '../../../src/pins/memory-pin-store.js';
import { Pins } from '../../../src/pins/pins.js';
import { createSelector } from '../../../src/balance/create-selector.js';
import { FakeClock } from '../../support/fake-clock.js';
import { LogSink } from '../../support/log-sink.js';

/** Metrics over a real node set seen through `view` (a reload's changing nodes.all), on a fake clock. */
function setup(t: TestContext, names: string[], view?: (nodes: NodeSet) => NodeSet) {
  const clock = new FakeClock();
  const config = validateConfig({ nodes: names.map((name, i) => ({ name, url: `http://127.0.0.1:${i + 1}` })), health: { enabled: false } });
  const nodes = new NodeSet(config, clock);
  const { logger } = createLoggers({ level: 'info', format: 'json', destination: new LogSink() });
  const outliers = new OutlierDetector(nodes, config.health.passive, clock, logger, async () => ({ ok: true, detail: 'not checked in this test' }));
  const health = new NodeHealth(nodes, config.health, clock);
  const store = new MemoryPinStore(clock, 10);
  const pins = new Pins(store, nodes, config.sticky, createSelector('round-robin', Math.random));
  const metrics = createMetrics({ nodes: view ? view(nodes) : nodes, outliers, health, rejections: new Map(), store, pins, clock });
  t.after(async () => {
    metrics.close();
    outliers.stop();
    await nodes.close();
  });
  return { clock, nodes, health, metrics };
}

async function values(metrics: Metrics, name: string): Promise<Array<{ labels: Record<string, unknown>; value: number }>> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, `${name} is registered`);
  return (await metric.get()).values.map((v) => ({ labels: { ...v.labels }, value: v.value }));
}

describe('metric labels', () => {
  it('maps methods to a closed set (case-sensitive, as HTTP methods are)', () => {
    assert.deepEqual(
      ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'get', 'PROPFIND', 'OPTIONS', 'GET\n', '"', ''].map(methodLabel),
      ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OTHER', 'OTHER', 'OTHER', 'OTHER', 'OTHER', 'OTHER'],
    );
  });

  it('maps statuses to their class; none when no answer was sent', () => {
    assert.deepEqual([0, 101, 200, 206, 304, 404, 499, 503, 599, 600, 42, -1].map(statusClassLabel), [
      'none',
      '1xx',
      '2xx',
      '2xx',
      '3xx',
      '4xx',
      '4xx',
      '5xx',
      '5xx',
      'other',
      'other',
      'other',
    ]);
  });
});

describe('series histogram', () => {
  it('counts a value in the first bucket whose bound it does not exceed (le is inclusive), and past the last one only in +Inf', async () => {
    const registry = new Registry();
    const h = new SeriesHistogram('t_seconds', 'test', [0.1, 1], registry);
    const s = h.series({ route: 'v2' });
    for (const v of [0.05, 0.1, 0.5, 1, 7]) s.observe(v);
    const text = await registry.metrics();
    assert.deepEqual(text.split('\n').filter((l) => l.startsWith('t_seconds')), [
      't_seconds_bucket{le="0.1",route="v2"} 2',
      't_seconds_bucket{le="1",route="v2"} 4',
      't_seconds_bucket{le="+Inf",route="v2"} 5',
      't_seconds_sum{route="v2"} 8.65',
      't_seconds_count{route="v2"} 5',
    ]);
    assert.match(text, /^# TYPE t_seconds histogram$/m);
  });
});

describe('metrics read at scrape time', () => {
  it('follow nodes.all as it changes: a node gone has no series left, one added has its own', async (t) => {
    let current: readonly ClusterNode[] | undefined;
    const { nodes, metrics } = setup(t, ['n1', 'n2', 'n3'], (set) => {
      current = set.all;
      return new Proxy(set, {
        get: (target, p) => {
          if (p === 'all') return current;
          const v = Reflect.get(target, p, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    });
    const [n1, n2, n3] = nodes.all;
    nodes.setFlag(n2!, { code: 'NODE_CLOCK_SKEW', message: 'off by 2 min', since: new Date().toISOString(), fix: 'sync the clock', severity: 'warning' });
    for (let i = 0; i < 7; i++) n2!.traffic.begin()(false);
    const named = async (name: string) => [...new Set((await values(metrics, name)).map((v) => v.labels.node))];
    assert.deepEqual(await named('harbor_lb_node_state'), ['n1', 'n2', 'n3']);
    assert.deepEqual(await values(metrics, 'harbor_lb_node_flag'), [{ labels: { node: 'n2', code: 'NODE_CLOCK_SKEW' }, value: 1 }]);
    assert.deepEqual((await values(metrics, 'harbor_lb_node_requests_total')).find((v) => v.labels.node === 'n2')?.value, 7);

    current = [n1!, n3!];
    for (const name of ['harbor_lb_node_state', 'harbor_lb_node_inflight', 'harbor_lb_node_requests_total', 'harbor_lb_node_ejections', 'harbor_lb_health_checks_total']) {
      assert.deepEqual(await named(name), ['n1', 'n3'], name);
    }
    assert.deepEqual(await values(metrics, 'harbor_lb_node_flag'), []);

    current = [n1!, n3!, n2!];
    assert.deepEqual(await named('harbor_lb_node_state'), ['n1', 'n3', 'n2']);
    nodes.deleteFlag(n2!, 'NODE_CLOCK_SKEW');
    assert.deepEqual(await values(metrics, 'harbor_lb_node_flag'), [], 'a cleared flag has no series');
  });

  it('counts the seconds spent in panic routing, the episode under way included', async (t) => {
    const { clock, nodes, metrics } = setup(t, ['n1']);
    const n1 = nodes.all[0]!;
    const panicSeconds = async () => (await values(metrics, 'harbor_lb_panic_seconds_total'))[0]!.value;
    assert.equal(await panicSeconds(), 0);
    nodes.setCheck(n1, 'unhealthy', 'down');
    clock.advance(5_000);
    assert.equal((await values(metrics, 'harbor_lb_panic'))[0]!.value, 1);
    assert.equal(await panicSeconds(), 5);
    nodes.setCheck(n1, 'healthy', 'up');
    clock.advance(10_000);
    assert.equal(await panicSeconds(), 5);
    nodes.setCheck(n1, 'unhealthy', 'down again');
    clock.advance(2_500);
    assert.equal(await panicSeconds(), 7.5);
  });
});
