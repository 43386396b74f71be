#!/usr/bin/env node
// npm run demo: the example HTTP server under the baton supervisor, a load
// from a separate process, several hot restarts while it runs (each with a
// new worker count, up and down), and what was lost: connections attempted,
// answered, and the time each handoff took.

import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { spawnLoad } from '../dist/tools/load/index.js';

const { values } = parseArgs({
  options: {
    restarts: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
    'interval-ms': { type: 'string', default: '1500' },
  },
});
const restarts = Number(values.restarts);
const interval = Number(values['interval-ms']);
const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

const port = await new Promise((done) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => done(port));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'baton-demo-'));
const config = join(dir, 'server.json');
const writeConfig = (concurrency) => writeFileSync(config, JSON.stringify({ concurrency, listen: [`127.0.0.1:${port}`] }));
writeConfig(2);

console.log(`baton demo: example server on 127.0.0.1:${port}, ${restarts} hot restarts under load`);
const supervisor = spawn(
  process.execPath,
  [join(root, 'dist/src/supervisor/cli.js'), 'run', '--log', 'json', '--socket-path', `@baton-demo-${process.pid}`,
    '--drain-time-s', '1', '--parent-shutdown-time-s', '2', '--retire-grace-ms', '500', '--', process.execPath, join(root, 'examples/http-server.mjs'), '--config', config],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
const handoffs = new Map();
const waiters = new Map();
createInterface({ input: supervisor.stderr }).on('line', (line) => {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return console.log(`  ${line}`);
  }
  if (entry.level !== 'info') console.log(`  supervisor ${entry.level}: ${entry.message}`);
  if (typeof entry.tookOverMs === 'number') {
    handoffs.set(entry.epoch, entry);
    waiters.get(entry.epoch)?.();
  }
});
const tookOver = (epoch) =>
  new Promise((done, fail) => {
    if (handoffs.has(epoch)) return done();
    const timer = setTimeout(() => fail(new Error(`epoch ${epoch} did not take over within 20 s`)), 20_000);
    waiters.set(epoch, () => (clearTimeout(timer), done()));
  });

try {
  await tookOver(0);
  const load = spawnLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: Number(values.concurrency), durationMs: 120_000 });
  await new Promise((r) => setTimeout(r, interval));
  const counts = [4, 2, 1, 3, 2];
  for (let epoch = 1, before = 2; epoch <= restarts; epoch++) {
    const workers = counts[(epoch - 1) % counts.length];
    writeConfig(workers);
    supervisor.kill('SIGHUP');
    await tookOver(epoch);
    const h = handoffs.get(epoch);
    const ms = (state) => (h.phases[state] ?? 0).toFixed(1);
    console.log(
      `  restart ${epoch}: took over ${h.tookOverMs} ms after SIGHUP: node start-up and imports ${h.tookOverMs - h.ms} ms, then ms in ` +
        `handshake ${ms('handshaking')}, init ${ms('initializing')}, sockets ${ms('takingSockets')}, workers ${ms('startingWorkers')}; ` +
        `${before} -> ${workers} workers: ${h.inherited} sockets inherited (${h.surplus} surplus, served then retired), ${h.created} created`,
    );
    before = workers;
    await new Promise((r) => setTimeout(r, interval));
  }
  load.stop();
  const result = await load.done;
  const epochs = {};
  for (const [who, n] of Object.entries(result.byResponder)) {
    const epoch = who.split(' ')[0];
    epochs[epoch] = (epochs[epoch] ?? 0) + n;
  }
  console.log(`\nconnections attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost}`);
  if (result.lost) console.log(`  lost by reason: ${JSON.stringify(result.errors)}`);
  console.log(`answered by: ${Object.entries(epochs).map(([e, n]) => `${e} ${n}`).join(', ')}`);
  console.log(`latency p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, max ${result.latencyMs.max.toFixed(2)} ms; ${Math.round(result.connectionsPerSecond)} connections/s`);
  process.exitCode = result.lost === 0 && result.answered === result.attempted ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  supervisor.kill('SIGTERM');
  await new Promise((r) => supervisor.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
