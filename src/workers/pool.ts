// N worker threads, one per worker index, each serving its own sockets with
// plain net/http/dgram on its own event loop. The pool is a follower of the
// generation: stop, resume, drain, retire, terminate reach every thread. A worker that dies is started
// again on the same sockets: at once while the generation accepts, else when
// it accepts again (a child that took over went away).

import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import type { SocketEntry } from '../listeners/listener-set';
import type { Listener } from '../listeners/spec';
import type { Follower } from '../restart/follower';
import type { Generation } from '../restart/generation';
import { BOOT_KEY, isFromWorker, type ToWorker, type WorkerBootData } from './messages';

export interface WorkerPoolOptions {
  /** The worker's module (a path or file: URL); it calls workerContext().serve(...). */
  script: string | URL;
  /** Passed to every worker as workerContext().data. */
  workerData?: unknown;
  /** How long a worker may take to serve all its listeners. Default 10 s. */
  startTimeoutMs?: number;
  /** How long a worker may take to exit once told to terminate. Default 5 s. */
  stopTimeoutMs?: number;
  /**
   * Wait before starting a worker again after it died. Default 100 ms; it
   * doubles with each restart that follows the last within RESTART_WINDOW_MS,
   * up to MAX_RESTART_DELAY_MS, so a worker that cannot start does not spin.
   */
  restartDelayMs?: number;
  execArgv?: string[];
}

/** Restarts closer together than this count as one crash loop. */
const RESTART_WINDOW_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

export interface WorkerPoolEvents {
  /** A worker died and is being started again. */
  workerExit: [index: number, code: number, error?: Error];
  warning: [message: string];
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements Follower {
  private readonly workers: Worker[] = [];
  /** Worker indexes that died while the generation was not accepting. */
  private readonly dead = new Set<number>();
  /** While not accepting: listeners still served until retired. */
  private keep: string[] = [];
  private terminating = false;
  /** Per worker index: when it was last started again, and how many restarts came in a row before. */
  private readonly restarts = new Map<number, { at: number; inARow: number }>();
  private readonly startTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly restartDelayMs: number;

  private constructor(
    private readonly generation: Generation,
    private readonly options: WorkerPoolOptions,
  ) {
    super();
    this.startTimeoutMs = positive(options.startTimeoutMs ?? 10_000, 'startTimeoutMs');
    this.stopTimeoutMs = positive(options.stopTimeoutMs ?? 5_000, 'stopTimeoutMs');
    this.restartDelayMs = positive(options.restartDelayMs ?? 100, 'restartDelayMs');
  }

  /** Starts one worker per worker index and resolves once every one serves all its listeners. */
  static async start(generation: Generation, options: WorkerPoolOptions): Promise<WorkerPool> {
    if (typeof options.script !== 'string' && !(options.script instanceof URL)) throw invalidArgument('script must be a path or a URL');
    const pool = new WorkerPool(generation, options);
    const count = generation.listenerSet.workers;
    try {
      await Promise.all(Array.from({ length: count }, (_, index) => pool.spawn(index)));
    } catch (error) {
      await pool.stop();
      throw error;
    }
    generation.follow(pool);
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Thread ids, for tests and diagnostics. */
  get threadIds(): number[] {
    return this.workers.map((w) => w.threadId);
  }

  stopAccepting(keep: readonly Listener[]): void {
    this.keep = keep.map((l) => l.name);
    this.broadcast({ baton: 'stop', keep: this.keep });
  }

  resumeAccepting(): void {
    this.keep = [];
    for (const index of this.dead) this.respawn(index);
    this.dead.clear();
    this.broadcast({ baton: 'resume' });
  }

  drain(ms: number): void {
    this.broadcast({ baton: 'drain', ms });
  }

  terminate(): Promise<void> {
    return this.stop();
  }

  /** Resolves once the worker serving the socket has let go of it (or is gone, its dups with it). */
  retire(entry: SocketEntry): Promise<void> {
    const worker = this.workers[entry.worker];
    if (!worker || worker.threadId === -1) return Promise.resolve();
    const listener = entry.listener.name;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('exit', done);
        resolve();
      };
      const onMessage = (m: unknown) => {
        if (isFromWorker(m) && m.baton === 'retired' && m.listener === listener && m.index === entry.index) done();
      };
      const timer = setTimeout(() => {
        this.emit('warning', `worker ${entry.worker} did not let go of socket ${entry.index} of ${listener} within ${this.stopTimeoutMs} ms: stopping it`);
        void worker.terminate();
      }, this.stopTimeoutMs);
      worker.on('message', onMessage).on('exit', done);
      worker.postMessage({ baton: 'retire', listener, index: entry.index } satisfies ToWorker);
    });
  }

  private broadcast(message: ToWorker): void {
    for (const worker of this.workers) worker.postMessage(message);
  }

  private spawn(index: number): Promise<void> {
    const set = this.generation.listenerSet;
    const boot: WorkerBootData = {
      index,
      epoch: this.generation.epoch,
      accepting: this.generation.accepting,
      keep: this.keep,
      // A thread started again gets a new segment; the one before it has exited, its counters kept.
      stats: this.generation.stats.forWorker(index),
      drainStrategy: this.generation.options.drainStrategy,
      listeners: set.listeners.filter((l) => l.role === 'workers').map((l) => ({
        name: l.name,
        protocol: l.address.protocol,
        family: l.family,
        host: l.address.host,
        port: l.address.port,
        backlog: l.backlog,
        sockets: set
          .servedBy(index)
          .filter((e) => e.listener === l)
          .map((e) => ({ index: e.index, fd: e.fd })),
      })),
      data: this.options.workerData,
    };
    const worker = new Worker(this.options.script, {
      workerData: { [BOOT_KEY]: boot },
      ...(this.options.execArgv ? { execArgv: this.options.execArgv } : {}),
    });
    this.workers[index] = worker;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        reject(new BatonError(ErrorCodes.WORKER, `worker ${index} did not serve its listeners within ${this.startTimeoutMs} ms`));
        void worker.terminate();
      }, this.startTimeoutMs);
      worker.on('message', (message) => {
        if (isFromWorker(message) && message.baton === 'warning') this.emit('warning', message.message);
        if (!isFromWorker(message) || message.baton !== 'ready' || ready) return;
        ready = true;
        clearTimeout(timer);
        resolve();
      });
      let failure: Error | undefined;
      worker.on('error', (error) => (failure = error));
      worker.on('exit', (code) => {
        clearTimeout(timer);
        if (this.workers[index] === worker) this.generation.stats.workerExited(index);
        if (!ready) {
          ready = true;
          reject(new BatonError(ErrorCodes.WORKER, `worker ${index} exited (code ${code}) before serving: ${failure?.message ?? 'no error given'}`, { cause: failure }));
          return;
        }
        if (this.terminating || this.workers[index] !== worker) return;
        this.emit('workerExit', index, code, failure);
        // Not accepting, it is still needed for the listeners a child dropped (their queues are served until retired).
        if (this.generation.accepting || this.keep.length > 0) this.respawn(index);
        else this.dead.add(index);
      });
    });
  }

  private respawn(index: number): void {
    this.generation.engine.workerRestarted(index);
    const now = performance.now();
    const last = this.restarts.get(index);
    const inARow = last && now - last.at < RESTART_WINDOW_MS ? last.inARow + 1 : 0;
    this.restarts.set(index, { at: now, inARow });
    const delayMs = Math.min(this.restartDelayMs * 2 ** inARow, MAX_RESTART_DELAY_MS);
    if (inARow > 0) this.emit('warning', `worker ${index}: restart ${inARow + 1} in a row, in ${delayMs} ms`);
    setTimeout(() => {
      if (this.terminating) return;
      this.spawn(index).catch((error: Error) => {
        this.emit('warning', `worker ${index} failed to start again: ${error.message}`);
        if (!this.terminating) this.respawn(index);
      });
    }, delayMs);
  }

  /** Tells every worker to terminate and waits; a worker that lingers is stopped by force. */
  async stop(): Promise<void> {
    this.terminating = true;
    await Promise.all(
      this.workers.map(async (worker) => {
        if (!worker || worker.threadId === -1) return; // never started, or already gone
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.postMessage({ baton: 'terminate' } satisfies ToWorker);
        const timer = setTimeout(() => void worker.terminate(), this.stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw invalidArgument(`${name} must be a positive integer (milliseconds)`);
  return value;
}
