import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import * as net from 'node:net';
import { test } from 'node:test';
import { DrainController } from '../../src/drain/controller';
import { renderPrometheus } from '../../src/stats/exposition';
import { EngineMetrics, ENGINE_METRICS } from '../../src/stats/engine';
import { StatsRegistry } from '../../src/stats/registry';
import { workerStats } from '../../src/stats/thread-stats';

test('engine metrics: every definition, and what the engine records', () => {
  const stats = new StatsRegistry({ startTimeSeconds: 1_700_000_000 });
  const engine = new EngineMetrics(stats);
  engine.setEpoch(2);
  engine.handoffCompleted(0.2);
  engine.countSockets({ inherited: 4, created: 1 });
  engine.workerRestarted(1);
  const text = renderPrometheus(stats.collect());
  for (const { name } of Object.values(ENGINE_METRICS)) assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
  for (const line of [
    'baton_hot_restart_generation 3',
    'baton_server_start_time_seconds 1700000000',
    'baton_hot_restarts_total 1',
    'baton_handoff_duration_seconds_bucket{le="0.25"} 1',
    'baton_sockets_inherited_total 4',
    'baton_sockets_created_total 1',
    'baton_sockets_retired_total 0',
    'baton_worker_restarts_total{worker="1"} 1',
  ]) assert.ok(text.includes(`\n${line}\n`), line);
  assert.throws(() => engine.setEpoch(-1), /epoch/);
  assert.throws(() => engine.handoffCompleted(-1), /seconds/);
  assert.throws(() => engine.workerRestarted(1.5), /worker index/);
});

test('connections accepted are counted per worker, from the worker thread\'s stats', async () => {
  const stats = new StatsRegistry();
  const engine = new EngineMetrics(workerStats(stats.forWorker(1)));
  const server = net.createServer((socket) => socket.end()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const stop = engine.countConnections(server, 1);
  const { port } = server.address() as net.AddressInfo;
  for (let i = 0; i < 3; i++) await once(net.connect(port, '127.0.0.1').resume(), 'close');
  stop();
  await once(net.connect(port, '127.0.0.1').resume(), 'close');
  server.close();
  assert.match(renderPrometheus(stats.collect()), /^baton_connections_accepted_total\{worker="1"\} 3$/m);
});

test('drain progress: connections left from each thread, seconds left from the main thread only', () => {
  let now = 0;
  const stats = new StatsRegistry();
  const main = new EngineMetrics(stats);
  const worker = new EngineMetrics(workerStats(stats.forWorker(0)));
  const mainDrain = new DrainController({ now: () => now });
  const workerDrain = new DrainController({ now: () => now });
  main.trackDrain(mainDrain);
  const stopWorker = worker.trackDrain(workerDrain);
  const connection = new EventEmitter();
  workerDrain.track(connection);

  const read = (name: string): number => stats.collect().find((f) => f.definition.name === name)!.series[0]!.values[0]!;
  mainDrain.start(10_000);
  workerDrain.start(10_000);
  now = 4_000;
  assert.equal(read('baton_drain_seconds_left'), 6);
  assert.equal(read('baton_drain_connections_left'), 1);
  connection.emit('close');
  assert.equal(read('baton_drain_connections_left'), 0);
  mainDrain.stop();
  assert.equal(read('baton_drain_seconds_left'), 0);
  stopWorker();
  assert.equal(workerDrain.listenerCount('progress'), 0);
  workerDrain.stop();
});
