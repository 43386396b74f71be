// The whole hot-restart sequence for the common case: start the worker
// threads and the generation, let the application initialize while the
// parent serves and the threads load their script, take the sockets, hand
// them to the threads, take over. Any failure before taking over abandons
// this generation and leaves the parent serving untouched.

import { BatonError, ErrorCodes, invalidArgument } from './errors';
import { parseListen, type ListenerSpec } from './listeners/spec';
import { Generation, type ListenOptions, type StartOptions } from './restart/generation';
import { WorkerPool, type WorkerPoolOptions } from './workers/pool';

/**
 * What serve() needs: the listeners, the worker count and the worker script,
 * with every option of Generation.start() (the hot-restart options; by
 * default `baton run`'s BATON_* variables), of generation.listen() (admin
 * listener) and of the worker pool.
 */
export interface ServeOptions extends StartOptions, WorkerPoolOptions, ListenOptions {
  /** Listener specs, or 'host:port' / '[v6]:port' / 'udp://host:port' strings. */
  listen: Array<ListenerSpec | string>;
  /** Worker threads, one per worker index. */
  workers: number;
  /**
   * Application initialization that needs this generation but not its
   * sockets yet. The worker threads start before it and load their script
   * while it runs: what they need from it, they cannot count on as they
   * load, only once their servers serve.
   */
  initialize?: (generation: Generation) => Promise<void> | void;
  /**
   * SIGTERM/SIGINT shut this generation down gracefully, draining for this
   * long (before take-over they abandon it: serve() rejects with
   * BATON_STOPPED), and SIGUSR1 emits 'reopenLogs'. Default 5000; false to
   * leave signals alone (Node then opens its inspector on SIGUSR1).
   */
  shutdownGraceMs?: number | false;
}

/** What serve() resolves to, once this generation has taken over. */
export interface Served {
  /** This process's generation: stats, drain, warnings, shutdown(), and the parent of the next one. */
  generation: Generation;
  /** The worker threads, one per worker index ('workerExit' and 'warning' events). */
  pool: WorkerPool;
}

/**
 * Serves `listen` with `workers` worker threads, each running `script`
 * (which calls workerContext().serve()), and takes over from the parent
 * generation, if any: start the workers and the generation, initialize,
 * take every socket and hand them to the workers, take over. Resolves once this generation accepts (its parent,
 * if any, is told to drain); rejects, leaving the parent serving untouched,
 * if any step fails before that.
 */
export async function serve(options: ServeOptions): Promise<Served> {
  const { listen, workers, initialize, shutdownGraceMs = 5000, script, workerData, startTimeoutMs, stopTimeoutMs, restartDelayMs, execArgv, admin, promClient, ...start } =
    options;
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
    let specs: ListenerSpec[] = [];
    // The threads start first: they load their script while we shake hands, initialize and take the sockets.
    generation = await Generation.start(start, (g) => {
      // Checked once the generation can report it: a bad listen address is a 'failed' line in the supervisor's log.
      if (!Array.isArray(listen)) throw invalidArgument('listen must be an array of listener specs or host:port strings');
      specs = listen.map((l) => (typeof l === 'string' ? parseListen(l) : l));
      pool = WorkerPool.launch(g, specs, workers, { script, workerData, startTimeoutMs, stopTimeoutMs, restartDelayMs, execArgv });
      // A worker that dies or cannot start again shows in the supervisor's log.
      pool.on('warning', (message) => g.warn(message));
      pool.on('workerExit', (index, code, error) => g.warn(`worker ${index} exited (code ${code})${error ? `: ${error.message}` : ''}`));
    });
    checkStopped();
    await initialize?.(generation);
    checkStopped();
    await generation.listen(specs, workers, { admin, promClient });
    checkStopped();
    await pool!.takeSockets();
    checkStopped();
    generation.takeOver();
  } catch (error) {
    signals(false);
    await pool?.stop();
    await generation?.abandon(error as Error);
    throw error;
  }
  serving = true;
  return { generation, pool: pool! }; // launched as the generation started
}
