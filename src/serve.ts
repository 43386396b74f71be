// The whole hot-restart sequence for the common case: start the generation,
// let the application initialize while the parent serves, take the sockets,
// start the worker threads, take over. Any failure before taking over
// abandons this generation and leaves the parent serving untouched.

import { parseListen, type ListenerSpec } from './listeners/listener-set';
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
   * long, and SIGUSR1 emits 'reopenLogs'. Default 5000; false to leave
   * signals alone (Node then opens its inspector on SIGUSR1).
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
  const generation = await Generation.start(start);
  let pool: WorkerPool | undefined;
  try {
    await initialize?.(generation);
    await generation.listen(specs, workers, { admin, promClient });
    pool = await WorkerPool.start(generation, { script, workerData, startTimeoutMs, stopTimeoutMs, restartDelayMs, execArgv });
    generation.takeOver();
  } catch (error) {
    await pool?.stop();
    await generation.abandon(error as Error);
    throw error;
  }
  if (shutdownGraceMs !== false) {
    // `on`, not `once`: a second SIGTERM (systemd signals the whole group, `baton run` forwards
    // its own) must not fall back to the default action and kill the drain halfway.
    const stop = (signal: NodeJS.Signals) => void generation.shutdown(signal, shutdownGraceMs);
    process.on('SIGTERM', stop).on('SIGINT', stop);
    process.on('SIGUSR1', () => generation.emit('reopenLogs'));
  }
  return { generation, pool };
}
