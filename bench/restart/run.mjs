// One restart under load, and the section that runs every scenario. A
// scenario: start the server with `from` workers; an unmeasured warm-up load
// (a fresh server answers its first loads slower); a steady-state load of
// windowMs; then a second load during which the restart to `to` workers
// happens, from leadMs before it until the old workers are gone and tailMs
// more, and at least windowMs in all, so that counts compare across rows and
// with the steady state. The load runs in its own process (spawnLoad) and
// counts every connection.

import { firstAnswer } from '../probe.mjs';
import { freePort, sleep } from '../../dist/test/support/wait.js';
import { runLoad, startLoadProcess } from '../processes.mjs';
import { formatNumber, printTable, targetText } from '../report.mjs';
import { PARENT_SHUTDOWN_S } from '../servers/baton.mjs';
import { scenarios } from './scenarios.mjs';

/** Parallel connection loops: enough to keep every accept queue busy on 2 cores. */
const CONCURRENCY = 32;
/** How long a restarted server may take to answer from its new epoch: PM2 replaces 4 busy workers in 20 s on a loaded machine. */
export const NEW_EPOCH_MS = 60_000;

const TIMING = {
  full: { warmUpMs: 500, leadMs: 300, tailMs: 300, windowMs: 3500 },
  quick: { warmUpMs: 300, leadMs: 200, tailMs: 200, windowMs: 3000 },
};

/** Restart signal to the old epoch's last answer the load saw (0 if none came after the signal). */
function drainMs(during, oldEpoch, signalledAt) {
  const last = Object.entries(during.lastAnswerAt)
    .filter(([responder]) => responder.split(' ', 1)[0] === `epoch=${oldEpoch}`)
    .map(([, at]) => at);
  return last.length > 0 ? Math.max(0, Math.max(...last) - signalledAt) : undefined;
}

async function runScenario({ server, from, to, flags }, { warmUpMs, leadMs, tailMs, windowMs }) {
  const port = await freePort();
  const targets = [{ host: '127.0.0.1', port }];
  const handle = await server.start({ port, workers: from, flags });
  let during;
  try {
    await runLoad({ targets, concurrency: CONCURRENCY, durationMs: warmUpMs });
    const steady = await runLoad({ targets, concurrency: CONCURRENCY, durationMs: windowMs });
    during = startLoadProcess({ targets, concurrency: CONCURRENCY, durationMs: 120_000 });
    const startedAt = performance.now();
    await sleep(leadMs);
    const askedAt = performance.now();
    // Unix ms: the clock of the load process's lastAnswerAt.
    const signalledAt = Date.now();
    const restart = handle.restart(to);
    let oldGoneMs;
    const [answeredAt, , takeoverMs] = await Promise.all([
      firstAnswer(port, restart.epoch, { ms: NEW_EPOCH_MS }),
      restart.oldGone.then(() => (oldGoneMs = performance.now() - askedAt)),
      restart.takeoverMs,
    ]);
    await sleep(Math.max(tailMs, windowMs - (performance.now() - startedAt)));
    during.stop();
    const counted = await during.done;
    return {
      steady,
      during: counted,
      newServingMs: answeredAt - askedAt,
      takeoverMs,
      drainMs: drainMs(counted, restart.epoch - 1, signalledAt),
      oldGoneMs,
    };
  } finally {
    during?.stop();
    await handle.stop();
  }
}

const LATENCIES = ['p50', 'p99', 'max'];
/** Issue 15's bound on what a restart adds to the slowest connection. */
const MAX_LATENCY_RATIO = 1.5;

/**
 * Every figure of one scenario; baton's name the same figure of the
 * alternative they are compared to, but for takeover, which only baton reports.
 */
function record(results, scenario, m) {
  const add = (metric, value, unit, target, compared = true) =>
    results.add(`restart.${scenario.key}.${metric}`, value, unit, {
      ...(scenario.baseline && compared ? { baseline: `restart.${scenario.baseline}.${metric}` } : {}),
      ...(target ? { target } : {}),
    });
  const ours = scenario.ours;
  add('attempted', m.during.attempted, 'connections');
  add('answered', m.during.answered, 'connections');
  add('lost', m.during.lost, 'connections', ours && { text: 'zero lost', met: m.during.lost === 0 });
  for (const p of LATENCIES) add(`${p}.ms`, m.during.latencyMs[p], 'ms');
  for (const p of LATENCIES) add(`steady.${p}.ms`, m.steady.latencyMs[p], 'ms');
  if (ours && !scenario.flags) {
    // restart.latency.4to2.max.ms beside the steady state's just before it (4 workers there, 2 before 2to4).
    const latency = `restart.latency.${scenario.from}to${scenario.to}`;
    const max = m.during.latencyMs.max;
    const steady = m.steady.latencyMs.max;
    results.add(`${latency}.steady.max.ms`, steady, 'ms');
    results.add(`${latency}.max.ms`, max, 'ms', {
      baseline: `${latency}.steady.max.ms`,
      target: { text: `restart max within ${MAX_LATENCY_RATIO}x steady-state max`, met: max <= MAX_LATENCY_RATIO * steady },
    });
  }
  add('new-serving.ms', m.newServingMs, 'ms');
  add('drain.ms', m.drainMs, 'ms');
  add('old-gone.ms', m.oldGoneMs, 'ms');
  if (m.takeoverMs !== undefined) add('takeover.ms', m.takeoverMs, 'ms', undefined, false);
}

function row(scenario, m, results) {
  // restart.latency.* is baton's alone (its own row, not Envoy's way, nor the alternatives of the same counts).
  const own = [`restart.${scenario.key}.`, ...(scenario.ours && !scenario.flags ? [`restart.latency.${scenario.from}to${scenario.to}.`] : [])];
  const targets = results.entries.filter((e) => own.some((prefix) => e.name.startsWith(prefix)) && e.target).map((e) => targetText(e.target));
  const lostBy = Object.entries(m.during.errors).map(([reason, n]) => `${reason} ${n}`);
  const { p50, p99, max } = m.during.latencyMs;
  return [
    scenario.name,
    ...[m.during.attempted, m.during.answered, m.during.lost, p50, p99, max, m.steady.latencyMs.max, m.newServingMs, m.takeoverMs, m.drainMs, m.oldGoneMs].map(
      formatNumber,
    ),
    [...lostBy, ...targets].join('; '),
  ];
}

export async function restartSection(results, { quick }) {
  const timing = quick ? TIMING.quick : TIMING.full;
  const rows = [];
  const failures = [];
  for (const scenario of scenarios({ quick })) {
    const unavailable = scenario.server.unavailable();
    if (unavailable) {
      rows.push([scenario.name, ...Array(11).fill('-'), unavailable]);
      continue;
    }
    try {
      const measured = await runScenario(scenario, timing);
      record(results, scenario, measured);
      rows.push(row(scenario, measured, results));
    } catch (error) {
      failures.push(`${scenario.name} failed: ${error.message}`);
      rows.push([scenario.name, ...Array(11).fill('-'), 'failed, see below']);
    }
  }
  printTable(
    `restart under load: ${CONCURRENCY} concurrent HTTP/1.0 connections from a separate process, counted over at least ${timing.windowMs / 1000} s around the restart.\n` +
      `Latency (p50, p99, max): connect to answer, ms; steady max: the same load for ${timing.windowMs / 1000} s before the restart, after a warm-up.\n` +
      'Times from the restart signal (SIGHUP; cold: SIGTERM; HAProxy: the new process started), ms: new serves = first answer from the new\n' +
      "epoch; takeover = SIGHUP to the new workers accepting (baton supervisor log); old drained = the old epoch's last answer the load saw;\n" +
      `old gone = the old processes exited, for baton only after its configured --parent-shutdown-time-s (${PARENT_SHUTDOWN_S} s here), however soon it drained.`,
    ['restart', 'attempted', 'answered', 'lost', 'p50', 'p99', 'max', 'steady max', 'new serves', 'takeover', 'old drained', 'old gone', 'lost by / targets'],
    rows,
  );
  // The first lines say why (a server's stderr can go on with its usage text).
  for (const failure of failures) console.log(`\n${failure.split('\n').slice(0, 4).join('\n')}`);
  if (failures.length > 0) process.exitCode = 1;
}
