// How soon a restart takes over: SIGHUP to the new epoch's workers accepting,
// as the supervisor logs it, through the real CLI (`baton run` and
// examples/http-server.mjs), for 1 to 16 workers on an idle server, 4 under
// load, and 64 listeners x 16 workers; with each step of the new process's
// start-up (its timeline in the supervisor's log) for 4 workers. nginx's and
// HAProxy's reloads, where installed, are the comparison: SIGHUP (HAProxy:
// the new process started) to the first answer from the new workers, the
// same probe as baton's `new serves` below.

import { firstAnswer } from './probe.mjs';
import { freePort } from '../dist/test/support/wait.js';
import { haproxy } from './alternatives/haproxy.mjs';
import { nginx } from './alternatives/nginx.mjs';
import { startLoadProcess } from './processes.mjs';
import { printFigures } from './report.mjs';
import { baton } from './servers/baton.mjs';

const MODES = {
  full: { restarts: 7, workers: [1, 2, 4, 8, 16], manyListeners: 64 },
  quick: { restarts: 3, workers: [1, 4], manyListeners: 8 },
};
const LOAD_CONCURRENCY = 32;
const TARGET = { idle: 150, loaded: 250 };

/**
 * A step of the timeline and the one it follows: the phase between them.
 * The worker threads start before the handshake and load their script
 * while it, the initialize and the socket transfer go on.
 */
const PHASES = [
  ['spawn', undefined, 'process'],
  ['node', 'process', 'baton'],
  ['imports', 'baton', 'imported'],
  ['application', 'imported', 'generation'],
  ['handshake', 'generation', 'initializing'],
  ['initialize', 'initializing', 'takingSockets'],
  ['sockets', 'takingSockets', 'startingWorkers'],
  ['threads-online', 'workersStarted', 'workersOnline'],
  ['threads-ready', 'workersStarted', 'workersReady'],
  ['takeover', 'workersReady', 'takenOver'],
];

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/** `restarts` restarts to the same worker count, one after the other, each once the previous epoch has gone. */
async function restartBaton({ workers, restarts, ports = 1, loaded = false }) {
  const all = [];
  while (all.length < ports) {
    const port = await freePort(); // free now, so the same one may come twice
    if (!all.includes(port)) all.push(port);
  }
  const handle = await baton.start({ port: all[0], workers, ports: all });
  const load = loaded ? startLoadProcess({ targets: [{ host: '127.0.0.1', port: all[0] }], concurrency: LOAD_CONCURRENCY, durationMs: 600_000 }) : undefined;
  const entries = [];
  const served = [];
  try {
    for (let i = 0; i < restarts; i++) {
      const askedAt = performance.now();
      const restart = handle.restart(workers);
      restart.oldGone.catch(() => undefined); // awaited once it took over; a restart that failed leaves it pending
      const [entry, answeredAt] = await Promise.all([restart.tookOver, firstAnswer(all[0], restart.epoch, { ms: 30_000 })]).catch((error) => {
        // Why, from the supervisor's log: a new epoch that failed is one line there.
        throw new Error(`${error.message}; the supervisor's last lines:\n${handle.supervisor.stderrTail().split('\n').slice(-4).join('\n')}`);
      });
      entries.push(entry);
      served.push(answeredAt - askedAt);
      await restart.oldGone;
    }
  } finally {
    load?.stop();
    await handle.stop();
  }
  return { tookOver: entries.map((e) => e.tookOverMs), served, timelines: entries.map((e) => e.timeline) };
}

/** SIGHUP (HAProxy: its new process started) to the first answer from the new epoch. */
async function restartAlternative(server, { workers, restarts }) {
  const port = await freePort();
  const handle = await server.start({ port, workers });
  const served = [];
  try {
    for (let i = 0; i < restarts; i++) {
      const askedAt = performance.now();
      const restart = handle.restart(workers);
      served.push((await firstAnswer(port, restart.epoch, { ms: 30_000 })) - askedAt);
      await restart.oldGone;
    }
  } finally {
    await handle.stop();
  }
  return served;
}

export async function takeover(results, { quick }) {
  const mode = quick ? MODES.quick : MODES.full;
  const since = results.entries.length;
  const { restarts } = mode;
  const failures = [];
  /** One measurement; one that fails is reported after the table, and the others still run. */
  const measure = async (what, run) => {
    try {
      return await run();
    } catch (error) {
      failures.push(`${what} failed: ${error.message}`);
      return undefined;
    }
  };
  for (const [key, server] of [['nginx', nginx], ['haproxy', haproxy]]) {
    if (server.unavailable()) continue;
    const served = await measure(key, () => restartAlternative(server, { workers: 4, restarts }));
    if (served) results.add(`takeover.${key}.p50.ms`, percentile(served, 50), 'ms');
  }
  const baseline = ['nginx', 'haproxy'].map((key) => `takeover.${key}.p50.ms`).find((name) => results.valueOf(name) !== undefined);
  for (const workers of mode.workers) {
    const m = await measure(`${workers} workers`, () => restartBaton({ workers, restarts }));
    if (!m) continue;
    const p50 = percentile(m.tookOver, 50);
    const target = workers === 4 ? { text: `p50 <= ${TARGET.idle} ms idle`, met: p50 <= TARGET.idle } : undefined;
    results.add(`takeover.workers-${workers}.p50.ms`, p50, 'ms', { ...(baseline && workers === 4 ? { baseline } : {}), ...(target ? { target } : {}) });
    results.add(`takeover.workers-${workers}.p99.ms`, percentile(m.tookOver, 99), 'ms');
    results.add(`takeover.workers-${workers}.new-serves.p50.ms`, percentile(m.served, 50), 'ms', baseline ? { baseline } : {});
    if (workers !== 4) continue;
    for (const [phase, from, to] of PHASES) {
      const spans = m.timelines.filter(Boolean).map((t) => t[to] - (from === undefined ? 0 : t[from])).filter(Number.isFinite);
      if (spans.length > 0) results.add(`takeover.workers-4.phase.${phase}.p50.ms`, percentile(spans, 50), 'ms');
    }
  }
  const loaded = await measure('4 workers under load', () => restartBaton({ workers: 4, restarts, loaded: true }));
  if (loaded) {
    const p50 = percentile(loaded.tookOver, 50);
    results.add('takeover.workers-4.loaded.p50.ms', p50, 'ms', { target: { text: `p50 <= ${TARGET.loaded} ms under load`, met: p50 <= TARGET.loaded } });
    results.add('takeover.workers-4.loaded.p99.ms', percentile(loaded.tookOver, 99), 'ms');
  }
  const many = await measure(`${mode.manyListeners} listeners x 16 workers`, () => restartBaton({ workers: 16, restarts, ports: mode.manyListeners }));
  if (many) {
    results.add(`takeover.listeners-${mode.manyListeners}.workers-16.p50.ms`, percentile(many.tookOver, 50), 'ms');
    results.add(`takeover.listeners-${mode.manyListeners}.workers-16.p99.ms`, percentile(many.tookOver, 99), 'ms');
  }
  printFigures(
    `take-over: SIGHUP to the new workers accepting (supervisor log), ${restarts} restarts each through \`baton run\`, idle unless 'loaded' ` +
      `(${LOAD_CONCURRENCY} concurrent connections); new-serves: to the first answer from them (nginx, HAProxy: the same probe); ` +
      'phase: each step of the new process for 4 workers (the threads start before the handshake)',
    results,
    since,
  );
  for (const failure of failures) console.log(`\n${failure}`);
  if (failures.length > 0) process.exitCode = 1;
}
