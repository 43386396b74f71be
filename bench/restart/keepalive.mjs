// What keep-alive clients see through restarts: a population of HTTP/1.1
// clients (tools/load 'keepalive'), each reusing its connection with a think
// time between requests and never retrying, runs against one server while
// it is restarted RESTARTS times, the worker count alternating. A request
// written and not answered (reset, closed, timed out) is a client-visible
// error; a connection the server closes gracefully is only reopened. The
// same clients over a steady window before the first restart are the
// control: no restart, no error.

import { firstAnswer } from '../probe.mjs';
import { freePort, sleep } from '../../dist/test/support/wait.js';
import { startLoadProcess } from '../processes.mjs';
import { formatNumber, printTable } from '../report.mjs';
import { NEW_EPOCH_MS } from './run.mjs';
import { keepAliveScenarios } from './scenarios.mjs';

const CLIENTS = 64;
const THINK_MS = { min: 5, max: 20 };
const RESTARTS = 5;
/** The worker counts of the first epoch and then of each restart in turn. */
const WORKERS = [4, 2];
/** After the old epoch is gone: the load process reports every 200 ms, so its snapshot then holds the whole restart. */
const SETTLE_MS = 500;

const TIMING = {
  full: { steadyMs: 3000 },
  quick: { steadyMs: 1000 },
};

const errorsOf = (snapshot) => snapshot.lost;

/** Errors in the steady window, then in each restart (from its signal to SETTLE_MS after the old epoch is gone). */
async function runPopulation(server, { steadyMs }) {
  const port = await freePort();
  const handle = await server.start({ port, workers: WORKERS[0] });
  let load;
  try {
    load = startLoadProcess({ protocol: 'keepalive', thinkMs: THINK_MS, targets: [{ host: '127.0.0.1', port }], concurrency: CLIENTS, durationMs: 600_000 });
    await sleep(steadyMs);
    const steady = load.snapshot();
    const perRestart = [];
    let before = errorsOf(steady);
    for (let i = 1; i <= RESTARTS; i++) {
      const restart = handle.restart(WORKERS[i % WORKERS.length]);
      await Promise.all([firstAnswer(port, restart.epoch, { ms: NEW_EPOCH_MS }), restart.oldGone]);
      await sleep(SETTLE_MS);
      const now = errorsOf(load.snapshot());
      perRestart.push(now - before);
      before = now;
    }
    load.stop();
    const total = await load.done;
    return { steady, perRestart, total };
  } finally {
    load?.stop();
    await handle.stop();
  }
}

function record(results, scenario, m) {
  const prefix = scenario.ours ? 'restart.keepalive' : `restart.keepalive.${scenario.key}`;
  // Only errors compare: how many requests a population sends depends on how long the restarts take.
  const add = (metric, value, unit, { compared = false, target } = {}) =>
    results.add(`${prefix}.${metric}`, value, unit, {
      ...(scenario.baseline && compared ? { baseline: `restart.keepalive.${scenario.baseline}.${metric}` } : {}),
      ...(target ? { target } : {}),
    });
  const errors = m.perRestart.reduce((sum, n) => sum + n, 0);
  add('sent', m.total.attempted, 'requests');
  add('answered', m.total.answered, 'requests');
  add('connections', m.total.connections, 'connections');
  add('steady.errors', m.steady.lost, 'requests', { compared: true });
  const target = scenario.ours && { text: `zero client-visible errors over ${RESTARTS} restarts`, met: errors === 0 && m.total.lost === 0 };
  add('errors', errors, 'requests', { compared: true, target });
}

function row(scenario, m) {
  const errors = m.perRestart.reduce((sum, n) => sum + n, 0);
  const by = Object.entries(m.total.errors).map(([reason, n]) => `${reason} ${n}`);
  return [
    scenario.name,
    ...[m.total.durationMs / 1000, m.total.attempted, m.total.answered, m.total.connections, m.steady.lost, errors].map(formatNumber),
    m.perRestart.join(' '),
    by.join('; '),
  ];
}

export async function keepAliveSection(results, { quick }) {
  const timing = quick ? TIMING.quick : TIMING.full;
  const rows = [];
  const failures = [];
  for (const scenario of keepAliveScenarios()) {
    const unavailable = scenario.server.unavailable();
    if (unavailable) {
      rows.push([scenario.name, ...Array(7).fill('-'), unavailable]);
      continue;
    }
    try {
      const measured = await runPopulation(scenario.server, timing);
      record(results, scenario, measured);
      rows.push(row(scenario, measured));
    } catch (error) {
      failures.push(`${scenario.name} failed: ${error.message}`);
      rows.push([scenario.name, ...Array(7).fill('-'), 'failed, see below']);
    }
  }
  printTable(
    `keep-alive clients through ${RESTARTS} restarts (${WORKERS.join('->')}->... workers): ${CLIENTS} HTTP/1.1 clients from a separate process, each reusing its\n` +
      `connection, ${THINK_MS.min}-${THINK_MS.max} ms think time between requests, no retries. Errors: requests written and not answered (a connection\n` +
      `the server closed gracefully is reopened, not counted); steady: over the ${timing.steadyMs / 1000} s before the first restart (the control);\n` +
      's: how long the clients ran; by restart: from its signal to the old processes gone. PM2: `pm2 reload`, then `pm2 scale` to the new count.',
    ['restart', 's', 'sent', 'answered', 'connections', 'steady errors', 'errors', 'by restart', 'errors by reason'],
    rows,
  );
  for (const failure of failures) console.log(`\n${failure.split('\n').slice(0, 4).join('\n')}`);
  if (failures.length > 0) process.exitCode = 1;
}
