// What baton costs per connection and per request: examples/http-server.mjs
// under `baton run` with 2 workers against the same HTTP server on 2 raw
// worker threads in one process, each on its own SO_REUSEPORT socket
// (servers/raw-threads.mjs). New connections per second (HTTP/1.0, one
// request each, tools/load) and keep-alive requests per second (HTTP/1.1,
// 64 connections, keepalive-load.mjs). Runs alternate baton and raw (ABBA)
// so the machine's noise hits both alike; each figure is the median, and a
// ratio the median of each round's baton/raw.
//
// On 2 cores the servers and the load generator would share them, and a
// generator that saturates first hides what the servers cost. So, where
// taskset is found and there are 2 cores or more, the servers run on CPU 0
// and the load on the others: each server then has one core, the figures
// are its cost per request, and server-busy (CPU time / wall time of the
// server's processes) shows it was the one saturated (close to 1), and
// load-busy that the load process was not (well under its cores). cpu-us
// is the servers' CPU time per connection or request: on a machine busy
// with other work the rates follow what else runs, CPU time much less.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../dist/test/support/wait.js';
import { answering } from './probe.mjs';
import { killServer, startLoadProcess, startServer } from './processes.mjs';
import { printFigures } from './report.mjs';
import { baton } from './servers/baton.mjs';

const WORKERS = 2;
const KEEPALIVE_CONNECTIONS = 64;
const NEW_CONNECTIONS_CONCURRENCY = 64;
/** Rounds of (baton, raw) pairs: the median of each server's runs is its figure. */
const ROUNDS = { full: 5, quick: 1 };
const WARM_UP_MS = 500;
const TARGET_RATIO = 0.97;
const target = (ratio) => ({ text: `>= ${TARGET_RATIO} of raw`, met: ratio >= TARGET_RATIO });

const run = promisify(execFile);
const here = (path) => fileURLToPath(new URL(path, import.meta.url));

const raw = {
  async start({ port, workers }) {
    const server = startServer(process.execPath, [here('servers/raw-threads.mjs'), '--port', String(port), '--workers', String(workers)]);
    await answering(server, port);
    return { supervisor: server, stop: () => killServer(server) };
  },
};

/** Every pid in process group `group` (a server started by startServer leads its own). */
function pidsOf(group) {
  const pids = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(name);
    if (fields && Number(fields[2]) === group) pids.push(Number(name));
  }
  return pids;
}

/** /proc/PID/stat from the state field on (state, ppid, pgrp, ...), or undefined once the process is gone. */
function statFields(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system, every thread) the processes of `group` have used. */
function cpuSeconds(group) {
  const ticks = pidsOf(group).reduce((sum, pid) => {
    const fields = statFields(pid);
    return fields ? sum + Number(fields[11]) + Number(fields[12]) : sum;
  }, 0);
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Servers on CPU 0, this process (and so the load processes it forks) on the others; undefined where that cannot be done. */
async function pinning() {
  const cores = availableParallelism();
  if (cores < 2) return undefined;
  let mask;
  try {
    mask = (await run('taskset', ['-p', String(process.pid)])).stdout.trim().split(' ').pop();
  } catch {
    return undefined;
  }
  const pin = (pid, cpus) => run('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
  await pin(process.pid, `1-${cores - 1}`);
  return {
    server: async (group) => {
      for (const pid of pidsOf(group)) await pin(pid, '0');
    },
    restore: () => run('taskset', ['-a', '-p', mask, String(process.pid)]),
  };
}

function keepAlive(port, durationMs) {
  const client = startServer(process.execPath, [
    here('keepalive-load.mjs'), '--port', String(port), '--connections', String(KEEPALIVE_CONNECTIONS), '--duration-ms', String(durationMs),
  ]);
  let output = '';
  client.stdout.setEncoding('utf8').on('data', (text) => (output += text));
  const done = client.exited.then(({ code, signal }) => {
    if (code !== 0) throw new Error(`keepalive-load exited (${signal ?? `code ${code}`}): ${client.stderrTail()}`);
    return JSON.parse(output);
  });
  return { pid: client.pid, done };
}

/** CPU seconds (user + system) process `pid` has used; 0 once it is gone. */
function processCpuSeconds(pid) {
  const fields = statFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / 100 : 0;
}

/**
 * One run of each load against one server: its rates, how busy it and the
 * load process were, and its CPU time per connection or request.
 */
async function measure(server, port, durationMs) {
  const group = server.supervisor.pid;
  const timed = async (start, count) => {
    const [cpu, at] = [cpuSeconds(group), performance.now()];
    const { pid, done } = start();
    // Read before the load process ends: /proc forgets it then.
    const loadBusy = sleep(durationMs * 0.9).then(() => processCpuSeconds(pid) / ((performance.now() - at) / 1000));
    const measured = await done;
    const used = cpuSeconds(group) - cpu;
    return { measured, busy: used / ((performance.now() - at) / 1000), loadBusy: await loadBusy, cpuUs: (used * 1e6) / count(measured) };
  };
  const connections = await timed(
    () => startLoadProcess({ targets: [{ host: '127.0.0.1', port }], concurrency: NEW_CONNECTIONS_CONCURRENCY, durationMs }),
    (measured) => measured.answered,
  );
  if (connections.measured.lost > 0) throw new Error(`${connections.measured.lost} connections lost: ${JSON.stringify(connections.measured.errors)}`);
  const keepalive = await timed(() => keepAlive(port, durationMs), (measured) => measured.requests);
  if (keepalive.measured.errors > 0) throw new Error(`${keepalive.measured.errors} keep-alive connections failed`);
  const figures = {};
  for (const [metric, { measured, busy, loadBusy, cpuUs }] of Object.entries({ connections, keepalive })) {
    figures[metric] = metric === 'connections' ? measured.connectionsPerSecond : measured.requestsPerSecond;
    Object.assign(figures, { [`${metric}Busy`]: busy, [`${metric}LoadBusy`]: loadBusy, [`${metric}CpuUs`]: cpuUs });
  }
  return figures;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

export async function overhead(results, { quick, durationMs }) {
  const since = results.entries.length;
  const pin = await pinning();
  const servers = {};
  try {
    for (const [key, kind] of Object.entries({ baton, raw })) {
      const port = await freePort();
      servers[key] = { port, handle: await kind.start({ port, workers: WORKERS }), runs: [] };
      await pin?.server(servers[key].handle.supervisor.pid);
      await measure(servers[key].handle, port, WARM_UP_MS); // unmeasured: JIT, pools and caches warm before any round
    }
    const rounds = quick ? ROUNDS.quick : ROUNDS.full;
    for (let round = 0; round < rounds; round++) {
      // ABBA: neither server always goes first.
      const order = round % 2 === 0 ? ['baton', 'raw'] : ['raw', 'baton'];
      for (const key of order) servers[key].runs.push(await measure(servers[key].handle, servers[key].port, durationMs));
    }
  } finally {
    for (const { handle } of Object.values(servers)) await handle.stop();
    await pin?.restore();
  }
  const figure = (key, metric) => median(servers[key].runs.map((r) => r[metric]));
  // Each round's baton run against the raw run beside it: noise that lasts a round cancels out.
  const ratio = (metric) => median(servers.baton.runs.map((r, round) => r[metric] / servers.raw.runs[round][metric]));
  for (const [metric, unit] of [['connections', 'conn/s'], ['keepalive', 'req/s']]) {
    results.add(`overhead.${metric}.baton`, figure('baton', metric), unit, { baseline: `overhead.${metric}.raw` });
    results.add(`overhead.${metric}.raw`, figure('raw', metric), unit);
    results.add(`overhead.${metric}.ratio`, ratio(metric), 'ratio', { target: target(ratio(metric)) });
    // CPU time per unit is what a loaded machine disturbs least: the rates depend on what else runs.
    results.add(`overhead.${metric}.baton.cpu-us`, figure('baton', `${metric}CpuUs`), 'µs', { baseline: `overhead.${metric}.raw.cpu-us` });
    results.add(`overhead.${metric}.raw.cpu-us`, figure('raw', `${metric}CpuUs`), 'µs');
    for (const key of ['baton', 'raw']) {
      results.add(`overhead.${metric}.${key}.server-busy`, figure(key, `${metric}Busy`), 'cores');
      results.add(`overhead.${metric}.${key}.load-busy`, figure(key, `${metric}LoadBusy`), 'cores');
    }
  }
  printFigures(
    `per-connection and per-request overhead, ${WORKERS} workers, baton against raw reuseport worker threads; ` +
      `median of ${servers.baton.runs.length} interleaved runs; ${pin ? 'servers on CPU 0, load on the others' : 'servers and load unpinned'}`,
    results,
    since,
  );
}
