// N worker threads, one per worker index, each serving its own sockets with
// plain net/http/dgram on its own event loop. The pool is a follower of the
// generation: stop, resume, drain, retire, terminate reach every thread. A worker that dies is started
// again on the same sockets: at once while the generation accepts, else when
// it accepts again (a child that took over went away).

import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { mark } from '../timeline';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import { fdLimit, socketKey } from '../listeners/servers';
import { resolveListeners, type Listener, type ListenerSpec } from '../listeners/spec';
import { MAX_WORKERS } from '../protocol/messages';
import type { Follower } from '../restart/follower';
import type { Generation } from '../restart/generation';
import { BOOT_KEY, isFromWorker, type ToWorker, type WorkerBootData, type WorkerListenerInfo, type WorkerListenerSockets } from './messages';

/** How the worker threads run: serve() takes these too. */
export interface WorkerPoolOptions {
  /** The worker's module (a path or file: URL); it calls workerContext().serve(...). */
  script: string | URL;
  /** Passed to every worker as workerContext().data. */
  workerData?: unknown;
  /** How long a worker may take to serve all its listeners once its generation holds them. Default 10 s. */
  startTimeoutMs?: number;
  /** How long a worker may take to exit once told to terminate. Default 5 s. */
  stopTimeoutMs?: number;
  /**
   * Wait before starting a worker again after it died. Default 100 ms; it
   * doubles with each restart that follows the last within RESTART_WINDOW_MS,
   * up to MAX_RESTART_DELAY_MS, so a worker that cannot start does not spin.
   */
  restartDelayMs?: number;
  /** Node options for the worker threads (new Worker's execArgv); default: the main thread's. */
  execArgv?: string[];
}

/** Restarts closer together than this count as one crash loop. */
const RESTART_WINDOW_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

/** What a WorkerPool emits; serve() turns both into generation warnings. */
export interface WorkerPoolEvents {
  /** A worker died and is being started again. */
  workerExit: [index: number, code: number, error?: Error];
  /** A worker's trouble: a restart in a crash loop, a failed start, a socket not let go of in time. */
  warning: [message: string];
}

/**
 * The worker threads of a generation, one per worker index, each serving
 * its own sockets: a follower that relays the generation's stop, resume,
 * drain, retire and terminate to every thread, and starts a thread that
 * died again on the same sockets (a sibling serves them meanwhile).
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements Follower {
  private readonly workers: Worker[] = [];
  /** Sockets on their way out: never handed to an adopter. */
  private readonly retiring = new Set<SocketEntry>();
  /** Per dead worker index, the sibling that serves its sockets until it is back. */
  private readonly adopters = new Map<number, number>();
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
  /** Every first thread serving all its sockets (rejects with the first that could not). */
  private readonly started: Promise<void>;
  /** Resolves once the generation holds its sockets (takeSockets()): every thread gets its own then. */
  private readonly handedOver: Promise<void>;
  private handOver!: () => void;
  /** The sockets went to the threads: a thread may hold dups of them from then on. */
  private handed = false;
  /** Threads that made their workerContext() (it says ready): the others cannot hear a terminate. */
  private readonly withContext = new WeakSet<Worker>();
  /** Why a first thread could not start, once one could not. */
  private failure?: Error;

  private constructor(
    private readonly generation: Generation,
    private readonly options: WorkerPoolOptions,
    /** The listeners the threads serve, as they will be named in the generation's ListenerSet. */
    private readonly served: WorkerListenerInfo[],
    count: number,
  ) {
    super();
    if (typeof options.script !== 'string' && !(options.script instanceof URL)) throw invalidArgument('script must be a path or a URL');
    this.startTimeoutMs = positive(options.startTimeoutMs ?? 10_000, 'startTimeoutMs');
    this.stopTimeoutMs = positive(options.stopTimeoutMs ?? 5_000, 'stopTimeoutMs');
    this.restartDelayMs = positive(options.restartDelayMs ?? 100, 'restartDelayMs');
    this.handedOver = new Promise((resolve) => (this.handOver = resolve));
    mark('workersStarted');
    let online = 0;
    const spawned = Array.from({ length: count }, (_, index) => {
      const started = this.spawn(index);
      this.workers[index].once('online', () => ++online === count && mark('workersOnline'));
      return started;
    });
    this.started = Promise.all(spawned).then(() => mark('workersReady'));
    this.started.catch((error: Error) => (this.failure = error)); // thrown by takeSockets(); a thread that fails before then is not a crash
  }

  /** Starts one worker per worker index, once generation.listen() has taken the sockets, and resolves once every one serves all its listeners. */
  static async start(generation: Generation, options: WorkerPoolOptions): Promise<WorkerPool> {
    const set = generation.listenerSet;
    const pool = new WorkerPool(generation, options, servedByWorkers(set).map(workerListener), set.workers);
    await pool.takeSockets();
    return pool;
  }

  /**
   * Starts the threads before the generation holds its sockets (serve()
   * does, as it shakes hands with the parent): each loads its script
   * meanwhile. `listen` and `workers` are what generation.listen() is given
   * next (its admin listener aside); then takeSockets().
   */
  static launch(generation: Generation, listen: ListenerSpec[], workers: number, options: WorkerPoolOptions): WorkerPool {
    integerIn(workers, 'workers', 1, MAX_WORKERS);
    return new WorkerPool(generation, options, resolveListeners(listen).map(workerListener), workers);
  }

  /**
   * Hands every thread its sockets, once generation.listen() has taken
   * them, and resolves once every one serves all its listeners (each has
   * startTimeoutMs from now); stops them all if one cannot.
   */
  async takeSockets(): Promise<void> {
    try {
      const set = this.generation.listenerSet;
      const names = servedByWorkers(set).map((l) => l.name);
      if (set.workers !== this.workers.length || names.join() !== this.served.map((l) => l.name).join()) {
        throw new BatonError(ErrorCodes.INVALID_STATE, `the worker threads were started for ${this.workers.length} workers of ${this.served.map((l) => l.name).join(', ')}; the generation holds ${set.workers} of ${names.join(', ')}`);
      }
      if (this.failure) throw this.failure; // no socket goes to threads that are about to stop
      this.handed = true;
      this.handOver();
      await this.started;
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.generation.follow(this);
  }

  /** How many worker threads (the generation's worker count). */
  get size(): number {
    return this.workers.length;
  }

  /** Thread ids, for tests and diagnostics. */
  get threadIds(): number[] {
    return this.workers.map((w) => w.threadId);
  }

  stopAccepting(keep: readonly SocketEntry[]): void {
    this.keep = keep.map((e) => socketKey(e.listener.name, e.index));
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
    const adopter = this.adopters.get(entry.worker);
    const serving = [entry.worker, ...(adopter === undefined ? [] : [adopter])];
    this.retiring.add(entry); // its master fd closes once this resolves: no adopter may take it up meanwhile
    return Promise.all(serving.map((index) => this.retireOn(index, entry))).then(() => void this.retiring.delete(entry));
  }

  private retireOn(index: number, entry: SocketEntry): Promise<void> {
    const worker = this.workers[index];
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
        this.emit('warning', `worker ${index} did not let go of socket ${entry.index} of ${listener} within ${this.stopTimeoutMs} ms: stopping it`);
        void worker.terminate();
      }, this.stopTimeoutMs);
      worker.on('message', onMessage).on('exit', done);
      worker.postMessage({ baton: 'retire', listener, index: entry.index } satisfies ToWorker);
    });
  }

  /**
   * A sibling serves the sockets of dead worker `dead` (its own and its
   * surplus ones): the kernel keeps queueing connections there, which no
   * one would accept until it is back. Nothing to do with no sibling alive.
   */
  private cover(dead: number): void {
    this.adopters.delete(dead);
    const alive = this.workers.map((w, i) => ({ w, i })).filter(({ w, i }) => i !== dead && w !== undefined && w.threadId !== -1 && !this.adopters.has(i));
    const adopter = alive.find(({ i }) => i > dead) ?? alive[0];
    if (!adopter) return;
    const set = this.generation.listenerSet;
    const listeners = servedByWorkers(set)
      .map((l) => ({ name: l.name, sockets: set.servedBy(dead).filter((e) => e.listener === l && !this.retiring.has(e)).map((e) => ({ index: e.index, fd: e.fd })) }))
      .filter((l) => l.sockets.length > 0);
    this.adopters.set(dead, adopter.i);
    adopter.w.postMessage({ baton: 'adopt', dead, listeners } satisfies ToWorker);
  }

  /** Worker `index` serves its own sockets again: its adopter lets go of them. */
  private uncover(index: number): void {
    const adopter = this.adopters.get(index);
    if (adopter === undefined) return;
    this.adopters.delete(index);
    this.workers[adopter]?.postMessage({ baton: 'release', dead: index } satisfies ToWorker);
  }

  private broadcast(message: ToWorker): void {
    for (const worker of this.workers) worker.postMessage(message);
  }

  /** One thread's sockets of each listener it serves: its own and, after a decrease, surplus ones. */
  private socketsOf(index: number): WorkerListenerSockets[] {
    const set = this.generation.listenerSet;
    return servedByWorkers(set).map((l) => ({ name: l.name, sockets: set.servedBy(index).filter((e) => e.listener === l).map((e) => ({ index: e.index, fd: e.fd })) }));
  }

  /** Starts thread `index`; it gets its sockets once the generation holds them (at once when started again). */
  private spawn(index: number): Promise<void> {
    const boot: WorkerBootData = {
      index,
      epoch: this.generation.epoch,
      accepting: this.generation.accepting,
      keep: this.keep,
      // A thread started again gets a new segment; the one before it has exited, its counters kept.
      stats: this.generation.stats.forWorker(index),
      drainStrategy: this.generation.options.drainStrategy,
      listeners: this.served,
      data: this.options.workerData,
    };
    const worker = new Worker(this.options.script, {
      workerData: { [BOOT_KEY]: boot },
      ...(this.options.execArgv ? { execArgv: this.options.execArgv } : {}),
    });
    this.workers[index] = worker;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      let timer: NodeJS.Timeout | undefined;
      void this.handedOver.then(() => {
        if (ready) return; // exited already, or serves no listener
        worker.postMessage({ baton: 'sockets', listeners: this.socketsOf(index) } satisfies ToWorker);
        timer = setTimeout(() => {
          const missing = this.served.length > 0 ? 'serve every listener (worker.serve)' : 'start';
          reject(new BatonError(ErrorCodes.WORKER, `worker ${index} did not ${missing} within ${this.startTimeoutMs} ms of getting its sockets`));
          void worker.terminate();
        }, this.startTimeoutMs);
      });
      const onReady = () => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        this.uncover(index);
        resolve();
      };
      worker.on('message', (message) => {
        if (isFromWorker(message) && message.baton === 'warning') this.emit('warning', message.message);
        if (isFromWorker(message) && message.baton === 'ready') {
          this.withContext.add(worker);
          onReady();
        }
      });
      // With nothing to serve, a running thread is ready, whether or not its script ever calls workerContext().
      if (this.served.length === 0) worker.once('online', onReady);
      let failure: Error | undefined;
      worker.on('error', (error) => (failure = error));
      worker.on('exit', (code) => {
        clearTimeout(timer);
        if (this.workers[index] === worker) this.generation.stats.workerExited(index);
        if (!ready) {
          ready = true;
          const why = failure?.message ?? 'no error given';
          // A thread that could not even start for want of fds says EMFILE only: say what the limit is.
          const limit = /\bE[MN]FILE\b/.test(why) && !/RLIMIT_NOFILE/.test(why) ? `; ${fdLimit()}` : '';
          reject(new BatonError(ErrorCodes.WORKER, `worker ${index} exited (code ${code}) before serving: ${why}${limit}`, { cause: failure }));
          return;
        }
        if (this.terminating || this.workers[index] !== worker) return;
        this.emit('workerExit', index, code, failure);
        // Its sockets stay in their groups: a sibling accepts on them until it is back. So do those it covered for.
        for (const [dead, adopter] of this.adopters) if (adopter === index) this.cover(dead);
        this.cover(index);
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

  /**
   * Tells every worker to terminate and waits; a worker that lingers is
   * stopped by force. Before the sockets went to them, they hold none of
   * ours and are stopped at once (one may still be loading its script); so
   * is one that never made its workerContext(), which cannot hear us.
   */
  async stop(): Promise<void> {
    this.terminating = true;
    await Promise.all(
      this.workers.map(async (worker) => {
        if (!worker || worker.threadId === -1) return; // never started, or already gone
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.postMessage({ baton: 'terminate' } satisfies ToWorker);
        const timer = setTimeout(() => void worker.terminate(), this.handed && this.withContext.has(worker) ? this.stopTimeoutMs : 0);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** Milliseconds: a positive int32, what setTimeout takes. */
function positive(value: number, name: string): number {
  return integerIn(value, name, 1, 2 ** 31 - 1);
}

/** The listeners worker threads serve (the admin listener is the main thread's). */
function servedByWorkers(set: ListenerSet): Listener[] {
  return set.listeners.filter((l) => l.role === 'workers');
}

function workerListener(l: Listener): WorkerListenerInfo {
  return { name: l.name, protocol: l.address.protocol, family: l.family, host: l.address.host, port: l.address.port, backlog: l.backlog };
}
