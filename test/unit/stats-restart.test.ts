import assert from 'node:assert/strict';
import { get } from 'node:http';
import { test } from 'node:test';
import { waitFor } from '../support/wait';
import * as native from '../../src/binding';
import { ListenerSet } from '../../src/listeners/listener-set';
import { resolveListeners } from '../../src/listeners/spec';
import { planHandoff } from '../../src/listeners/plan';
import { GenerationStats } from '../../src/restart/generation-stats';
import { EngineMetrics } from '../../src/stats/engine';
import type { MetricFamily } from '../../src/stats/families';
import { StatsRegistry } from '../../src/stats/registry';
import { joinSnapshots, MAX_SNAPSHOT_SERIES, splitSnapshot, type StatsSnapshot } from '../../src/stats/snapshot';
import { workerStats } from '../../src/stats/thread-stats';

function value(families: MetricFamily[], name: string, labels: string[] = []): number | undefined {
  const family = families.find((f) => f.definition.name === name);
  return family?.series.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.values[0];
}

const REQUESTS = { name: 'example_requests', help: 'Requests answered.' };

/** A generation: its registry, and a worker thread's counter (written from this thread, as the worker would). */
function generation(epoch: number, startTimeSeconds = 1_000 + epoch) {
  const stats = new StatsRegistry({ startTimeSeconds });
  const engine = new EngineMetrics(stats);
  engine.setEpoch(epoch);
  const requests = workerStats(stats.forWorker(0)).counter(REQUESTS);
  return { stats, engine, requests };
}

test('a counter read from the exposition never goes down across 5 restarts and equals every request served', () => {
  let served = 0;
  const serve = (g: ReturnType<typeof generation>, n: number): void => {
    g.requests.inc(n);
    served += n;
  };
  let lastScrape = 0;
  const scrape = (admin: StatsRegistry): void => {
    const seen = value(admin.collect(), 'example_requests_total')!;
    assert.ok(seen >= lastScrape, `scrape went from ${lastScrape} down to ${seen}`);
    lastScrape = seen;
  };

  let parent = generation(0);
  serve(parent, 100);
  scrape(parent.stats);
  for (let epoch = 1; epoch <= 5; epoch++) {
    const child = generation(epoch);
    serve(parent, 7); // the parent serves while the child initializes
    child.stats.importParent(parent.stats.snapshot()); // first pull, then the admin listener is the child's
    scrape(child.stats);
    for (let flush = 0; flush < 6; flush++) {
      serve(parent, 3);
      serve(child, 5);
      const pulled = parent.stats.snapshot();
      if (flush % 3 !== 1) child.stats.importParent(pulled); // one pull in three is missed...
      if (flush === 2) child.stats.importParent(pulled); // ...and one repeated
      scrape(child.stats);
    }
    serve(parent, 2); // last requests before terminate
    child.stats.importParent(parent.stats.snapshot());
    child.stats.parentGone();
    scrape(child.stats);
    parent = child;
  }
  assert.equal(lastScrape, served);
  assert.equal(value(parent.stats.collect(), 'baton_hot_restart_generation'), 6, 'the generation counts 1..6, never summed');
});

test('gauges: the parent\'s share while it lives (replaced at each pull), gone after it terminates; never-import ones stay local', () => {
  const parent = generation(0);
  const child = generation(1);
  for (const g of [parent, child]) g.stats.gauge({ name: 'heap_bytes', help: 'Heap.', importMode: 'neverImport' }).set(g === parent ? 100 : 10);
  const parentOpen = parent.stats.gauge({ name: 'connections_open', help: 'Open.' });
  const childOpen = child.stats.gauge({ name: 'connections_open', help: 'Open.' });
  parentOpen.set(7);
  childOpen.set(2);

  child.stats.importParent(parent.stats.snapshot());
  let view = child.stats.collect();
  assert.equal(value(view, 'connections_open'), 9);
  assert.equal(value(view, 'heap_bytes'), 10);
  assert.equal(value(view, 'baton_hot_restart_generation'), 2);

  parentOpen.set(3);
  child.stats.importParent(parent.stats.snapshot());
  assert.equal(value(child.stats.collect(), 'connections_open'), 5, 'the share is replaced, not added');

  child.stats.parentGone();
  view = child.stats.collect();
  assert.equal(value(view, 'connections_open'), 2);
  assert.equal(value(view, 'baton_hot_restart_generation'), 2);
  assert.throws(() => child.stats.importParent(parent.stats.snapshot()), { code: 'BATON_INVALID_STATE' });
});

test('the original start time, histograms and metrics only a parent defined carry over generations', () => {
  const g0 = generation(0, 1_000);
  g0.stats.counter({ name: 'legacy', help: 'Only the first generation has it.' }).inc(4);
  const h = { name: 'latency_seconds', help: 'L.', buckets: [0.1, 1] };
  g0.stats.histogram(h).observe(0.05);
  const g1 = generation(1, 2_000);
  g1.stats.histogram(h).observe(5);
  g1.stats.importParent(g0.stats.snapshot());
  g1.stats.parentGone();
  const g2 = generation(2, 3_000);
  g2.stats.importParent(g1.stats.snapshot());
  g2.stats.parentGone();

  assert.equal(g2.stats.startTimeSeconds, 1_000);
  const view = g2.stats.collect();
  assert.equal(value(view, 'baton_server_start_time_seconds'), 1_000);
  assert.equal(value(view, 'legacy_total'), 4);
  assert.deepEqual(view.find((f) => f.definition.name === 'latency_seconds')!.series[0]!.values, [1, 0, 1, 5.05]);
});

test('the child sees the parent\'s drain through its own gauges', () => {
  const parent = generation(0);
  const child = generation(1);
  parent.engine.drainConnectionsLeft.set(12);
  parent.engine.drainSecondsLeft.set(30);
  child.stats.importParent(parent.stats.snapshot());
  const view = child.stats.collect();
  assert.equal(value(view, 'baton_parent_connections'), 12);
  assert.equal(value(view, 'baton_drain_connections_left'), 12);
  assert.equal(value(view, 'baton_drain_seconds_left'), 30);
  child.stats.parentGone();
  assert.equal(value(child.stats.collect(), 'baton_parent_connections'), 0);
});

test('a large snapshot splits into records under the protocol limit and joins back', () => {
  const parent = generation(0);
  const perUser = parent.stats.counter({ name: 'per_user', help: 'Per user.', labelNames: ['user'] });
  for (let i = 0; i < 3_000; i++) perUser.labels({ user: `user-${i}` }).inc(i);
  const snapshot = parent.stats.snapshot();
  const parts = splitSnapshot(snapshot, 64 * 1024);
  assert.ok(parts.length > 1);
  for (const part of parts) assert.ok(Buffer.byteLength(JSON.stringify(part)) <= 64 * 1024);
  const joined = JSON.parse(JSON.stringify(joinSnapshots(parts))) as StatsSnapshot;
  const child = generation(1);
  child.stats.importParent(joined);
  assert.equal(value(child.stats.collect(), 'per_user_total', ['user-2999']), 2_999);
  assert.deepEqual(child.stats.collect(), (() => {
    const direct = generation(1);
    direct.stats.importParent(snapshot);
    return direct.stats.collect();
  })());
  assert.throws(() => splitSnapshot(snapshot, 100), { code: 'BATON_CAPACITY' });
});

test('a bad snapshot is refused whole and changes nothing', () => {
  const child = generation(1);
  child.requests.inc(3);
  const before = child.stats.collect();
  const good = generation(0).stats.snapshot();
  const bad: unknown[] = [
    null,
    { ...good, format: 'other' },
    { ...good, startTimeSeconds: -5 },
    { ...good, metrics: [{ name: 'x', type: 'counter', help: '', labelNames: [], series: [[[], [1]]] }] },
    { ...good, metrics: [{ name: 'x', type: 'gauge', help: '', labelNames: ['a'], series: [[[], [1]]] }] },
    { ...good, metrics: [{ name: 'x', type: 'gauge', help: '', labelNames: [], series: [[[], [Infinity]]] }] },
    { ...good, metrics: [{ name: 'x', type: 'histogram', help: '', labelNames: [], buckets: [1], series: [[[], [1, 2]]] }] },
    { ...good, metrics: [{ name: 'x', type: 'gauge', help: '', labelNames: [], series: Array(MAX_SNAPSHOT_SERIES + 1).fill([[], [1]]) }] },
    { ...good, metrics: [{ ...good.metrics[0], series: [[[], [1]]] }, { name: '', type: 'gauge', help: '', labelNames: [], series: [] }] },
  ];
  for (const snapshot of bad) assert.throws(() => child.stats.importParent(snapshot as StatsSnapshot), { code: 'BATON_INVALID_ARGUMENT' });
  assert.deepEqual(child.stats.collect(), before);
});

test('a series summed past Number.MAX_VALUE stays behind; the rest of the snapshot reaches the child', () => {
  const parent = generation(0);
  parent.requests.inc(4);
  const huge = parent.stats.gauge({ name: 'huge', help: 'H.' });
  huge.set(Number.MAX_VALUE);
  huge.inc(Number.MAX_VALUE);
  const child = generation(1);
  child.stats.importParent(JSON.parse(JSON.stringify(parent.stats.snapshot())) as StatsSnapshot);
  assert.equal(value(child.stats.collect(), 'example_requests_total'), 4);
  assert.equal(value(child.stats.collect(), 'huge'), undefined);
});

test('the admin listener answers once the parent\'s numbers are in: a pull that fails keeps it waiting, a later one opens it', async (t) => {
  const fd = native.tcpListen(4, '127.0.0.1', 0, false, 16);
  const port = native.socketInfo(fd).port;
  const listeners = resolveListeners([], { host: '127.0.0.1', port });
  const wanted = [{ ...listeners[0]!.address, ipv6Only: false, sockets: 1 }];
  const set = ListenerSet.assemble(listeners, 1, planHandoff([wanted[0]!], wanted, 1, 'drain'), new Map([[0, new Map([[0, fd]])]]));
  let parentAnswers: StatsSnapshot | undefined;
  const parent = { draining: () => true, pullStats: async () => parentAnswers };
  const stats = new GenerationStats(1, 'gradual', parent, () => undefined);
  stats.serveAdmin(set, 1);
  t.after(() => {
    stats.parentGone(true);
    stats.terminate();
    set.close();
  });
  const scrape = () =>
    new Promise<number | string>((resolve) => {
      const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 300 }, (res) => (res.resume(), resolve(res.statusCode!)));
      req.on('timeout', () => (req.destroy(), resolve('no answer'))).on('error', () => undefined);
    });

  await stats.parentStopped(() => true); // the first pull fails
  assert.equal(await scrape(), 'no answer', 'no counter seen going back: nobody answers yet');
  parentAnswers = generation(0).stats.snapshot();
  stats.parentDraining(); // pulls every second
  await waitFor(async () => (await scrape()) === 200, { timeoutMs: 3000, what: 'a scrape answered once a pull succeeded' });
  assert.equal(await scrape(), 200);
});
