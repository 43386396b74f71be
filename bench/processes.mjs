// Every process the bench starts goes through here, so that every one of them
// is killed when the bench ends, whether it finished, failed or was
// interrupted. Servers run in their own process group: killing the group
// also takes what they started (baton generations, nginx workers).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { waitFor } from '../dist/test/support/wait.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { spawnLoad } from '../dist/tools/load/index.js';

/** Process groups (servers) and single pids (load processes) still running. */
const groups = new Set();
const loads = new Set();
let dir;

/** A scratch directory for configs, removed at exit. */
export function workDir() {
  dir ??= mkdtempSync(join(tmpdir(), 'baton-bench-'));
  return dir;
}

/** Kept lines of a process's stderr, for the error that says why it failed. */
const STDERR_LINES = 40;

/**
 * Starts a server in its own process group. `exited` resolves with how it
 * ended (also when it could not start); `stderrTail()` is its last words.
 */
export function startServer(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  groups.add(child);
  const tail = [];
  child.stderr.setEncoding('utf8').on('data', (text) => {
    tail.push(...text.split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - STDERR_LINES));
  });
  child.exited = new Promise((resolve) => {
    child.once('error', (error) => (groups.delete(child), resolve({ error })));
    child.once('exit', (code, signal) => (groups.delete(child), resolve({ code, signal })));
  });
  child.stderrTail = () => tail.join('\n');
  return child;
}

/** SIGKILL to the whole group; waits for the leader to be gone. */
export async function killServer(child) {
  if (!groups.has(child)) return;
  killGroup(child);
  await child.exited;
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * The JSON lines a server writes on `stream` (a log, status reports):
 * `when(match)` resolves with the first line, past or future, that matches,
 * and rejects once the process has exited without writing one.
 */
export function jsonLines(child, stream) {
  const seen = [];
  const waiting = new Set();
  createInterface({ input: stream }).on('line', (line) => {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      return;
    }
    seen.push(entry);
    for (const waiter of waiting) if (waiter.match(entry)) waiting.delete(waiter), waiter.resolve(entry);
  });
  let ended;
  child.exited.then(() => {
    ended = new Error(`${child.spawnfile} exited: ${child.stderrTail() || 'no stderr'}`);
    for (const waiter of waiting) waiter.reject(ended);
    waiting.clear();
  });
  return (match) => {
    const found = seen.find(match);
    if (found) return Promise.resolve(found);
    if (ended) return Promise.reject(ended);
    return new Promise((resolve, reject) => waiting.add({ match, resolve, reject }));
  };
}

/** spawnLoad, killed at exit should the bench end before the load does. */
export function startLoadProcess(options) {
  const run = spawnLoad(options);
  loads.add(run.pid);
  run.done.finally(() => loads.delete(run.pid)).catch(() => {});
  return run;
}

/** Runs a load process to its end. */
export function runLoad(options) {
  return startLoadProcess(options).done;
}

function cleanUp() {
  for (const child of groups) killGroup(child);
  for (const pid of loads) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}

process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of a process's children (nginx's or PM2's workers). */
export function childrenOf(pid) {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Resolves once none of `pids` exists any more (their parent reaps them). */
export function allGone(pids, what) {
  return waitFor(() => !pids.some(isAlive), { timeoutMs: 60_000, what, intervalMs: 5 });
}
