// The whole hot-restart sequence for the common case: start the generation,
// let the application initialize while the parent serves, take the sockets,
// start the worker threads, take over. Any failure before taking over
// abandons this generation and leaves the parent serving untouched.

import { BatonError, ErrorCodes } from './errors';
import { parseListen, type ListenerSpec } from './listeners/spec';
import { Generation, type ListenOptions, type StartOptions } from './restart/generation';
import { WorkerPool, type WorkerPoolOptions } from './workers/pool';

export interface ServeOptions extends StartOptions, WorkerPoolOptions, ListenOptions {
  /** Listener specs, or 'host:port' / '[v6]:port' / 'udp://host:port' strings. */
  listen: Array<ListenerSpec | string>;
  /** Worker threads, one per worker index. */
  workers: number;
  /** Application initialization that needs this generation but not its sockets yet. */
  initialize?: (generation: Generation) => Promise<void> | void;
  /**
   * SIGTERM/SIGINT shut this generation down gracefully, draining for this
   * long (before take-over they abandon it: serve() rejects with
   * BATON_STOPPED), and SIGUSR1 emits 'reopenLogs'. Default 5000; false to
   * leave signals alone (Node then opens its inspector on SIGUSR1).
   */
  shutdownGraceMs?: number | false;
}

export interface Served {
  generation: Generation;
  pool: WorkerPool;
}

export async function serve(options: ServeOptions): Promise<Served> {
  const { listen, workers, initialize, shutdownGraceMs = 5000, script, workerData, startTimeoutMs, stopTimeoutMs, restartDelayMs, execArgv, admin, promClient, ...start } =
    options;
  const specs = listen.map((l) => (typeof l === 'string' ? parseListen(l) : l));
  // Signals are ours from the first moment: a SIGUSR1 (log rotation) while this generation starts
  // must not open Node's inspector, and a SIGTERM then abandons it at its next step.
  let generation: Generation | undefined;
  let serving = false;
  let stoppedBy: NodeJS.Signals | undefined;
  // `on`, not `once`: a second SIGTERM (systemd signals the whole group, `baton run` forwards
  // its own) must not fall back to the default action and kill the drain halfway.
  const stop = (signal: NodeJS.Signals): void => {
    if (serving) void generation!.shutdown(signal, shutdownGraceMs as number);
    else stoppedBy ??= signal;
  };
  const reopenLogs = (): void => void generation?.emit('reopenLogs');
  const signals = (on: boolean): void => {
    if (shutdownGraceMs === false) return;
    const method = on ? 'on' : 'off';
    process[method]('SIGTERM', stop)[method]('SIGINT', stop)[method]('SIGUSR1', reopenLogs);
  };
  const checkStopped = (): void => {
    if (stoppedBy) throw new BatonError(ErrorCodes.STOPPED, `${stoppedBy} before this generation took over; its parent serves on`);
  };
  signals(true);
  let pool: WorkerPool | undefined;
  try {
    generation = await Generation.start(start);
    checkStopped();
    await initialize?.(generation);
    checkStopped();
    await generation.listen(specs, workers, { admin, promClient });
    checkStopped();
    pool = await WorkerPool.start(generation, { script, workerData, startTimeoutMs, stopTimeoutMs, restartDelayMs, execArgv });
    // A worker that dies or cannot start again shows in the supervisor's log.
    const g = generation;
    pool.on('warning', (message) => g.warn(message));
    pool.on('workerExit', (index, code, error) => g.warn(`worker ${index} exited (code ${code})${error ? `: ${error.message}` : ''}`));
    checkStopped();
    generation.takeOver();
  } catch (error) {
    signals(false);
    await pool?.stop();
    await generation?.abandon(error as Error);
    throw error;
  }
  serving = true;
  return { generation, pool };
}
