#!/usr/bin/env node
// npm run demo: the example HTTP server under the baton supervisor, a load
// from a separate process, several hot restarts while it runs (each with a
// new worker count, up and down), and what was lost: connections attempted,
// answered, and the time each handoff took. Then a bad deploy that crashes
// a second after taking over: the supervisor rolls back to the epoch still
// draining, which answers again.

import { writeFileSync, mkdtempSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { freePort, runDemo } from '../dist/tools/demo/index.js';
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

const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'baton-demo-'));
const config = join(dir, 'server.json');
const writeConfig = (concurrency, extra = {}) => writeFileSync(config, JSON.stringify({ concurrency, listen: [`127.0.0.1:${port}`], ...extra }));
writeConfig(2);

console.log(`baton demo: example server on 127.0.0.1:${port}, ${restarts} hot restarts under load`);
const supervisor = spawn(
  process.execPath,
  [join(root, 'dist/src/supervisor/cli.js'), 'run', '--log', 'json', '--socket-path', `@baton-demo-${process.pid}`,
    '--drain-time-s', '2', '--parent-shutdown-time-s', '4', '--retire-grace-ms', '500', '--', process.execPath, join(root, 'examples/http-server.mjs'), '--config', config],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
const handoffs = new Map();
const waiters = new Map();
let onRollback;
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
  if (typeof entry.rolledBackTo === 'number') onRollback?.();
});
const tookOver = (epoch) =>
  new Promise((done, fail) => {
    if (handoffs.has(epoch)) return done();
    const timer = setTimeout(() => fail(new Error(`epoch ${epoch} did not take over within 20 s`)), 20_000);
    waiters.set(epoch, () => (clearTimeout(timer), done()));
  });

await runDemo(supervisor, dir, async () => {
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
  const byEpoch = (run) => {
    const epochs = {};
    for (const [who, n] of Object.entries(run.byResponder)) {
      const epoch = who.split(' ')[0];
      epochs[epoch] = (epochs[epoch] ?? 0) + n;
    }
    return Object.entries(epochs).map(([e, n]) => `${e} ${n}`).join(', ');
  };
  console.log(`\nconnections attempted ${result.attempted}, answered ${result.answered}, lost ${result.lost}`);
  if (result.lost) console.log(`  lost by reason: ${JSON.stringify(result.errors)}`);
  console.log(`answered by: ${byEpoch(result)}`);
  console.log(`latency p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, max ${result.latencyMs.max.toFixed(2)} ms; ${Math.round(result.connectionsPerSecond)} connections/s`);

  // A bad deploy: the next epoch takes over, then dies. What it had accepted dies with it (its process is gone);
  // everything queued on the sockets the older epoch still holds is served by that one again.
  const bad = restarts + 1;
  const good = restarts;
  console.log(`\nbad deploy: epoch ${bad} exits ${1000} ms after taking over`);
  const during = spawnLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: Number(values.concurrency), durationMs: 120_000 });
  await new Promise((r) => setTimeout(r, 500));
  writeConfig(counts[(restarts - 1) % counts.length], { crashAfterMs: 1000 });
  const rolledBack = new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`no rollback within 20 s`)), 20_000);
    onRollback = () => (clearTimeout(timer), done());
  });
  supervisor.kill('SIGHUP');
  await tookOver(bad);
  await rolledBack;
  await new Promise((r) => setTimeout(r, interval));
  during.stop();
  const crash = await during.done;
  const after = await spawnLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: Number(values.concurrency), durationMs: interval }).done;
  console.log(`  through the crash: attempted ${crash.attempted}, answered ${crash.answered}, lost ${crash.lost}${crash.lost ? ` ${JSON.stringify(crash.errors)}: the connections epoch ${bad} had accepted, gone with its process` : ''}; answered by: ${byEpoch(crash)}`);
  console.log(`  after the rollback: attempted ${after.attempted}, answered ${after.answered}, lost ${after.lost}; answered by: ${byEpoch(after)}`);
  const epochsAfter = Object.keys(after.byResponder).map((who) => who.split(' ')[0]);
  // Reset or closed before an answer: accepted by the process that died. A timeout or a refusal would be a queue nobody served.
  const inherent = new Set(['ECONNRESET', 'closed-early']);
  const rolledBackCleanly = after.lost === 0 && epochsAfter.every((e) => e === `epoch=${good}`) && Object.keys(crash.errors).every((reason) => inherent.has(reason));
  return result.lost === 0 && result.answered === result.attempted && rolledBackCleanly;
});
