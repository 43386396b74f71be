import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as path from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { StatsRegistry } from '../../src/stats/registry';
import { workerStats, type StatsHandle } from '../../src/stats/thread-stats';
import type { MetricFamily } from '../../src/stats/families';

const threadStatsModule = path.join(__dirname, '../../src/stats/thread-stats.js');

/** Runs `body` in a worker thread with `stats` = workerStats(handle); resolves when the thread has exited. */
async function inWorker(handle: StatsHandle, body: string): Promise<void> {
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const stats = require(${JSON.stringify(threadStatsModule)}).workerStats(workerData);
     ${body}`,
    { eval: true, workerData: handle },
  );
  const [code] = (await once(worker, 'exit')) as [number];
  assert.equal(code, 0, 'worker exited cleanly');
}

function value(families: MetricFamily[], name: string, labels: string[] = []): number[] | undefined {
  const family = families.find((f) => f.definition.name === name);
  return family?.series.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.values;
}

test('metrics are defined once per thread and validated', () => {
  const stats = new StatsRegistry();
  const c = stats.counter({ name: 'jobs', help: 'Jobs.' });
  assert.equal(c.definition.name, 'jobs_total', 'counters get _total');
  assert.equal(stats.counter({ name: 'jobs_total', help: 'Jobs.' }), c, 'the same definition gives the same metric');
  assert.throws(() => stats.gauge({ name: 'jobs_total', help: 'Jobs.' }), { code: 'BATON_INVALID_ARGUMENT', message: /already defined differently/ });
  assert.throws(() => stats.counter({ name: '1bad', help: '' }), /metric name must match/);
  assert.throws(() => stats.counter({ name: 'x', help: '', labelNames: ['__reserved'] }), /must not start with __|not start with __/);
  assert.throws(() => stats.histogram({ name: 'h', help: '', labelNames: ['le'] }), /reserved/);
  assert.throws(() => stats.histogram({ name: 'h', help: '', buckets: [1, 1] }), /strictly increasing/);
  assert.throws(() => stats.counter({ name: 'c', help: '', importMode: 'neverImport' } as never), /only gauges/);
  assert.throws(() => c.inc(-1), /only goes up/);
  assert.throws(() => c.inc(Infinity), /only goes up/);
  const labelled = stats.gauge({ name: 'temp', help: 'T.', labelNames: ['room'] });
  assert.throws(() => labelled.set(1), /has labels \(room\): use labels/);
  assert.throws(() => labelled.labels({ room: 'a', extra: 'b' }), /exactly the labels room/);
  assert.throws(() => labelled.labels({ room: 'x'.repeat(300) }), /at most 256/);
  assert.throws(() => labelled.labels({ room: 'a' }).set(NaN), /finite/);
  assert.equal(labelled.labels({ room: 1 }), labelled.labels({ room: '1' }), 'one series per set of label values');
  assert.throws(() => new StatsRegistry({ startTimeSeconds: -1 }), /startTimeSeconds/);
  assert.throws(() => stats.forWorker(-1), /worker index/);
});

test('the main thread sees every worker thread\'s values summed, without waiting on them', async () => {
  const stats = new StatsRegistry();
  const served = stats.counter({ name: 'served', help: 'Served.', labelNames: ['code'] });
  served.labels({ code: 200 }).inc(5);
  stats.gauge({ name: 'open', help: 'Open.' }).set(1);
  const latency = stats.histogram({ name: 'latency_seconds', help: 'L.', buckets: [0.1, 1] });
  latency.observe(0.05);

  const body = `
    const served = stats.counter({ name: 'served', help: 'Served.', labelNames: ['code'] });
    served.labels({ code: '200' }).inc(10);
    served.labels({ code: '500' }).inc();
    stats.gauge({ name: 'open', help: 'Open.' }).set(2);
    const latency = stats.histogram({ name: 'latency_seconds', help: 'L.', buckets: [0.1, 1] });
    latency.observe(0.5); latency.observe(3);`;
  await Promise.all([inWorker(stats.forWorker(0), body), inWorker(stats.forWorker(1), body)]);

  const view = stats.collect();
  assert.deepEqual(value(view, 'served_total', ['200']), [25]);
  assert.deepEqual(value(view, 'served_total', ['500']), [2]);
  assert.deepEqual(value(view, 'open'), [5]);
  assert.deepEqual(value(view, 'latency_seconds'), [1, 2, 2, 0.05 + 2 * 3.5], 'buckets (not cumulative, +Inf last) then the sum');
});

test('a worker started again on the same index keeps its counters and drops its gauges', async () => {
  const stats = new StatsRegistry();
  const body = `stats.counter({ name: 'hits', help: 'H.' }).inc(3); stats.gauge({ name: 'busy', help: 'B.' }).inc();`;
  await inWorker(stats.forWorker(0), body);
  await inWorker(stats.forWorker(0), body);
  await inWorker(stats.forWorker(0), `stats.counter({ name: 'hits', help: 'H.' }).inc(1);`);
  const view = stats.collect();
  assert.deepEqual(value(view, 'hits_total'), [7]);
  assert.equal(value(view, 'busy'), undefined, 'the gauges of threads that are gone are gone');
});

test('a worker that exited and is not started again: its counters stay, its gauges go, and only once', async () => {
  const stats = new StatsRegistry();
  await inWorker(stats.forWorker(1), `stats.counter({ name: 'hits', help: 'H.' }).inc(2); stats.gauge({ name: 'busy', help: 'B.' }).set(5);`);
  assert.deepEqual(value(stats.collect(), 'busy'), [5], 'a segment outlives its thread until told');
  stats.workerExited(1);
  stats.workerExited(1);
  const view = stats.collect();
  assert.deepEqual(value(view, 'hits_total'), [2]);
  assert.equal(value(view, 'busy'), undefined);
  stats.forWorker(1);
  assert.deepEqual(value(stats.collect(), 'hits_total'), [2], 'a thread started later does not fold the same counters again');
  assert.throws(() => stats.workerExited(-1), { code: 'BATON_INVALID_ARGUMENT' });
});

test('a handle is written by one thread only; the same thread gets the same stats again', async () => {
  const stats = new StatsRegistry();
  const handle = stats.forWorker(3);
  const here = workerStats(handle);
  assert.equal(workerStats(handle), here);
  await assert.rejects(inWorker(handle, ''), /already written by another thread/);
  assert.throws(() => workerStats({ stats: 'baton.stats/1', buffer: new SharedArrayBuffer(8) } as StatsHandle), /not a baton stats buffer/);
  assert.throws(() => workerStats({} as StatsHandle), /forWorker/);
});

test('a full segment refuses new series with BATON_CAPACITY, and keeps what it has', () => {
  const stats = new StatsRegistry({ capacity: { slots: 3 } });
  const c = stats.counter({ name: 'per_user', help: '', labelNames: ['user'] });
  for (const user of ['a', 'b', 'c']) c.labels({ user }).inc();
  assert.throws(() => c.labels({ user: 'd' }), { code: 'BATON_CAPACITY' });
  assert.equal(stats.collect()[0]!.series.length, 3);
  assert.throws(() => new StatsRegistry({ capacity: { directoryBytes: 40 } }).counter({ name: 'a_rather_long_name', help: '' }), { code: 'BATON_CAPACITY' });
});

test('threads that define one name differently: the main thread\'s definition wins, once warned', async () => {
  const stats = new StatsRegistry();
  stats.counter({ name: 'thing', help: 'T.' }).inc(2);
  await inWorker(stats.forWorker(0), `stats.gauge({ name: 'thing_total', help: 'T.' }).set(100);`);
  const warnings: string[] = [];
  const onWarning = (w: Error): number => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    assert.deepEqual(value(stats.collect(), 'thing_total'), [2]);
    stats.collect();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', onWarning);
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /thing_total is defined with another type/);
});
