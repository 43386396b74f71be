import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import * as promClient from 'prom-client';
import { metricsHandler } from '../../src/stats/admin';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../../src/stats/exposition';
import { StatsRegistry } from '../../src/stats/registry';

test('Prometheus text format 0.0.4: HELP, TYPE, escaped labels, _total counters, cumulative histograms', () => {
  const stats = new StatsRegistry();
  stats.counter({ name: 'example_requests', help: 'Requests answered.\nBy code \\ path.', labelNames: ['code', 'path'] })
    .labels({ code: 200, path: '/a "quoted"\\\n' })
    .inc(3);
  stats.gauge({ name: 'temperature', help: 'T.' }).set(-1.5);
  const h = stats.histogram({ name: 'latency_seconds', help: 'L.', buckets: [0.1, 1] });
  for (const v of [0.05, 0.5, 0.7, 9]) h.observe(v);
  assert.equal(
    renderPrometheus(stats.collect()),
    [
      '# HELP example_requests_total Requests answered.\\nBy code \\\\ path.',
      '# TYPE example_requests_total counter',
      'example_requests_total{code="200",path="/a \\"quoted\\"\\\\\\n"} 3',
      '# HELP latency_seconds L.',
      '# TYPE latency_seconds histogram',
      'latency_seconds_bucket{le="0.1"} 1',
      'latency_seconds_bucket{le="1"} 3',
      'latency_seconds_bucket{le="+Inf"} 4',
      'latency_seconds_sum 10.25',
      'latency_seconds_count 4',
      '# HELP temperature T.',
      '# TYPE temperature gauge',
      'temperature -1.5',
      '',
    ].join('\n'),
  );
  assert.equal(renderPrometheus([]), '');
});

test('a labelled histogram keeps its labels before le', () => {
  const stats = new StatsRegistry();
  stats.histogram({ name: 'size_bytes', help: 'S.', labelNames: ['kind'], buckets: [10] }).labels({ kind: 'x' }).observe(3);
  assert.match(renderPrometheus(stats.collect()), /^size_bytes_bucket\{kind="x",le="10"\} 1$/m);
});

async function withAdmin(handler: http.RequestListener, body: (get: (path: string, method?: string) => Promise<{ status: number; type?: string; text: string }>) => Promise<void>): Promise<void> {
  const server = http.createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    await body(async (path, method = 'GET') => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
      return { status: res.status, type: res.headers.get('content-type') ?? undefined, text: await res.text() };
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

test('the admin handler serves GET /metrics with prom-client registries appended, baton\'s names winning', async () => {
  const stats = new StatsRegistry();
  stats.counter({ name: 'example_requests', help: 'Ours.' }).inc(2);
  const theirs = new promClient.Registry();
  new promClient.Counter({ name: 'example_requests_total', help: 'Theirs, per thread.', registers: [theirs] }).inc(99);
  new promClient.Gauge({ name: 'app_queue_depth', help: 'Queue.', registers: [theirs] }).set(4);
  new promClient.Histogram({ name: 'app_latency', help: 'Lat.', buckets: [1], registers: [theirs] }).observe(0.5);

  await withAdmin(metricsHandler(stats, { promClient: [theirs] }), async (get) => {
    const res = await get('/metrics');
    assert.equal(res.status, 200);
    assert.equal(res.type, PROMETHEUS_CONTENT_TYPE);
    assert.match(res.text, /^example_requests_total 2$/m);
    assert.doesNotMatch(res.text, /99|Theirs/);
    assert.match(res.text, /^app_queue_depth 4$/m);
    assert.match(res.text, /^app_latency_bucket\{le="1"\} 1$/m);
    assert.equal((await get('/metrics?x=1', 'HEAD')).status, 200);
    assert.equal((await get('/other')).status, 404);
    assert.equal((await get('/metrics', 'POST')).status, 405);
  });
});

test('the admin handler answers 500 when collecting fails, and refuses what it cannot serve', async () => {
  const stats = new StatsRegistry();
  stats.onCollect(() => {
    throw new Error('hook broke');
  });
  await withAdmin(metricsHandler(stats), async (get) => {
    const res = await get('/metrics');
    assert.equal(res.status, 500);
    assert.match(res.text, /hook broke/);
  });
  const openMetrics = new promClient.Registry();
  openMetrics.setContentType(promClient.Registry.OPENMETRICS_CONTENT_TYPE as never);
  assert.throws(() => metricsHandler(stats, { promClient: [openMetrics] }), /text format 0.0.4/);
  assert.throws(() => metricsHandler({} as StatsRegistry), /StatsRegistry/);
  assert.throws(() => metricsHandler(stats, { path: 'metrics' }), /path/);
});
