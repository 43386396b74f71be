// Flat over a thousand restarts, and what baton costs in memory:
// examples/http-server.mjs under `baton run`, under load from a separate
// process, reloaded N times in a row between 2 and 4 workers, each reload
// waiting for its take-over (as `baton reload` does). After a warm-up and at
// the end, the supervisor's and the serving generation's fds and RSS are read
// from /proc, and the control socket directory is listed: what grows between
// the two is a leak, whatever the noise of a shared machine does to times.

import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, sleep, waitFor } from '../dist/test/support/wait.js';
import { killServer, startLoadProcess, startServer, workDir } from './processes.mjs';
import { printFigures } from './report.mjs';
import { baton } from './servers/baton.mjs';

const CONCURRENCY = 16;
/**
 * Reloads before the first reading: every code path run, every lazy import
 * loaded, the heaps grown to their working size. (With a JIT, the
 * supervisor's RSS grew 0.9 MB from reload 50 to 150, as V8's background
 * compile threads grew their malloc arenas; it now runs --jitless, flat.)
 */
const WARM_UP = { full: 200, quick: 50 };
const RESTARTS = { full: 1000, quick: 100 };
/** A load process runs at most 10 minutes: a new one takes over every so many reloads. */
const RELOADS_PER_LOAD = 100;
/** Reload n asks for 4 workers when n is odd, 2 when even (as epoch 0 has). */
const workersOf = (n) => (n % 2 === 1 ? 4 : 2);
/** The older generations exit --parent-shutdown-time-s (2 s) after the next takes over: ample. */
const QUIET_MS = 30_000;
/** After the last status request, for the supervisor to close that connection before its fds are counted. */
const SETTLE_MS = 300;
const RSS_GROWTH_MB = 2;

const TARGETS = {
  lost: (v) => ({ text: 'zero lost', met: v === 0 }),
  failed: (v) => ({ text: 'every reload takes over', met: v === 0 }),
  fds: (v) => ({ text: 'no fd more after the warm-up', met: v === 0 }),
  rss: (v) => ({ text: `RSS within ${RSS_GROWTH_MB} MB of the warm-up's`, met: v <= RSS_GROWTH_MB }),
  left: (v) => ({ text: 'only the live sockets in the directory', met: v === 0 }),
  supervisorRss: (v) => ({ text: '<= 50 MB', met: v <= 50 }),
};

/**
 * fds open and resident memory of a process: all of it (VmRSS) and its own
 * (RssAnon), without the pages of node's binary it maps, shared with every
 * node process.
 */
function usage(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)[1]) / 1024;
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssMb: mb('VmRSS'), anonMb: mb('RssAnon') };
}

/** What node itself takes, doing nothing: the floor under the supervisor's figure. */
async function bareNode() {
  const idle = startServer(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  await sleep(1000);
  try {
    return usage(idle.pid);
  } finally {
    await killServer(idle);
  }
}

/** The load, in processes of at most RELOADS_PER_LOAD reloads each, its counts summed. */
function loadAll(port) {
  const total = { attempted: 0, answered: 0, lost: 0, errors: {} };
  let run;
  const start = () => (run = startLoadProcess({ targets: [{ host: '127.0.0.1', port }], concurrency: CONCURRENCY, durationMs: 600_000 }));
  return {
    total,
    start,
    /** Starts no new connection and adds up what the running one counted, once its connections have finished. */
    async stop() {
      if (!run) return;
      const stopping = run;
      run = undefined;
      stopping.stop();
      const counted = await stopping.done;
      total.attempted += counted.attempted;
      total.answered += counted.answered;
      total.lost += counted.lost;
      for (const [reason, n] of Object.entries(counted.errors)) total.errors[reason] = (total.errors[reason] ?? 0) + n;
    },
  };
}

/**
 * A reading with nothing in flight: the load stopped, the older generations
 * exited, so that neither connections nor draining generations' pipes and
 * sockets count. The load then starts again.
 */
async function reading(handle, load, socketDir) {
  await load.stop();
  let status;
  await waitFor(async () => (status = await handle.status()).generations.length === 1, QUIET_MS, 'the older generations exit');
  await sleep(SETTLE_MS);
  const [serving] = status.generations;
  const live = new Set([`baton_0_${serving.epoch}`, 'baton_0_supervisor']);
  const measured = {
    epoch: serving.epoch,
    workers: serving.workers,
    supervisor: usage(handle.supervisor.pid),
    generation: usage(serving.pid),
    left: readdirSync(socketDir).filter((name) => !live.has(name)),
  };
  load.start();
  return measured;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function soak(results, { quick }) {
  const since = results.entries.length;
  const restarts = quick ? RESTARTS.quick : RESTARTS.full;
  const warmUp = quick ? WARM_UP.quick : WARM_UP.full;
  const port = await freePort();
  const socketDir = join(workDir(), 'soak');
  mkdirSync(socketDir, { mode: 0o700 });
  const handle = await baton.start({ port, workers: workersOf(0), socketPath: join(socketDir, 'baton') });
  const load = loadAll(port);
  const tookOverMs = [];
  const failures = [];
  /** Readings by moment ('warm', 'end') and worker count. */
  const readings = { warm: {}, end: {} };
  const startedAt = performance.now();
  try {
    load.start();
    for (let n = 1; n <= restarts; n++) {
      const outcome = await handle.reload(workersOf(n));
      if (outcome.ok) tookOverMs.push(outcome.tookOverMs);
      else failures.push(outcome.message);
      const moment = n >= restarts - 1 ? 'end' : n === warmUp - 1 || n === warmUp ? 'warm' : undefined;
      if (moment) {
        const measured = await reading(handle, load, socketDir);
        readings[moment][measured.workers] = measured;
      } else if (n % RELOADS_PER_LOAD === 0) {
        await load.stop();
        load.start();
      }
      if (n % RELOADS_PER_LOAD === 0) console.log(`soak: ${n} of ${restarts} reloads, ${load.total.lost} lost so far`);
    }
    await load.stop();
  } finally {
    await load.stop().catch(() => {}); // only when the soak failed: it is already stopped otherwise
    await handle.stop();
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const { total } = load;
  const add = (name, value, unit, target) => results.add(`soak.${name}`, value, unit, target ? { target: target(value) } : {});
  add('restarts', tookOverMs.length, 'restarts');
  add('failed', failures.length, 'restarts', TARGETS.failed);
  add('attempted', total.attempted, 'connections');
  add('lost', total.lost, 'connections', TARGETS.lost);
  const sorted = [...tookOverMs].sort((a, b) => a - b);
  add('restart.p50.ms', percentile(sorted, 50), 'ms');
  add('restart.p99.ms', percentile(sorted, 99), 'ms');
  for (const moment of ['warm', 'end']) {
    for (const workers of [2, 4]) if (!readings[moment][workers]) throw new Error(`no reading of a generation with ${workers} workers (${moment}): ${failures[0] ?? 'a reload failed'}`);
  }
  const warm = readings.warm[2];
  const end = readings.end[2];
  add('supervisor.fds', end.supervisor.fds, 'fds');
  add('supervisor.fds.growth', end.supervisor.fds - warm.supervisor.fds, 'fds', TARGETS.fds);
  add('supervisor.rss.growth.mb', end.supervisor.rssMb - warm.supervisor.rssMb, 'MB', TARGETS.rss);
  for (const workers of [2, 4]) {
    const [before, after] = [readings.warm[workers].generation, readings.end[workers].generation];
    add(`generation.workers-${workers}.fds`, after.fds, 'fds');
    add(`generation.workers-${workers}.fds.growth`, after.fds - before.fds, 'fds', TARGETS.fds);
    add(`generation.workers-${workers}.rss.growth.mb`, after.rssMb - before.rssMb, 'MB', TARGETS.rss);
  }
  add('sockets.left', end.left.length, 'files', TARGETS.left);
  const node = await bareNode();
  results.add('memory.supervisor.rss.mb', end.supervisor.rssMb, 'MB', { baseline: 'memory.node.rss.mb', target: TARGETS.supervisorRss(end.supervisor.rssMb) });
  results.add('memory.supervisor.anon.mb', end.supervisor.anonMb, 'MB', { baseline: 'memory.node.anon.mb' });
  results.add('memory.node.rss.mb', node.rssMb, 'MB');
  results.add('memory.node.anon.mb', node.anonMb, 'MB');
  results.add('memory.generation.rss.mb', end.generation.rssMb, 'MB');
  // Two generations alike but for two worker threads, read alike: what one thread costs.
  results.add('memory.worker.rss.mb', (readings.end[4].generation.rssMb - end.generation.rssMb) / 2, 'MB');
  printFigures(
    `soak: ${restarts} reloads in ${Math.round(seconds)} s (baton reload, each waiting for its take-over), alternating 2 and 4 workers, ` +
      `under ${CONCURRENCY} concurrent HTTP/1.0 connections from a separate process.\n` +
      `Growth: from after reloads ${warmUp - 1} and ${warmUp} to after the last two, with the load paused and only the serving generation left; ` +
      'generation: the serving one, compared with the one of the same worker count.\n' +
      'memory: at the end; anon: RssAnon, without the pages of node\'s binary (shared by every node process); node: `node -e` doing nothing;\n' +
      'generation: RSS of a generation with 2 workers; worker: (RSS of the generation with 4 workers - RSS of the one with 2) / 2.' +
      (total.lost > 0 ? `\nlost by: ${Object.entries(total.errors).map(([reason, n]) => `${reason} ${n}`).join(', ')}` : '') +
      (end.left.length > 0 ? `\nleft behind: ${end.left.join(', ')}` : ''),
    results,
    since,
  );
  for (const failure of failures.slice(0, 5)) console.log(`reload failed: ${failure}`);
  if (failures.length > 0) process.exitCode = 1;
}
