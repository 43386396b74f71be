// Envoy's hot-restarter, for baton generations, fixed where it hurts: a
// failing new epoch never takes the serving one down, restarts asked for
// while one is starting are queued and coalesced, and older generations
// drain on their own deadlines while newer ones come and go.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { defaultOptions, optionsToEnv, type HotRestartOptions } from '../options';
import { STATUS_FD_ENV, type StatusReport } from '../restart/status';

export type GenerationPhase = 'starting' | 'serving' | 'draining' | 'exited';

export interface SupervisedGeneration {
  epoch: number;
  pid: number;
  phase: GenerationPhase;
  /** When the restart that started it was asked for (performance.now()). */
  askedAt: number;
  /** Milliseconds its child machine spent in each state on the way to taking over. */
  phases: Record<string, number>;
  process: ChildProcess;
  /** Why it failed, as it reported it or as the supervisor ended it. */
  failure?: string;
}

export interface SupervisorOptions {
  command: string;
  args: string[];
  /** Handed to every generation in its environment (epoch and base id are set per generation). */
  engine: Partial<HotRestartOptions>;
  /** SIGKILL what is still running this long after SIGTERM. Default 30 s. */
  killTimeoutMs?: number;
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  epoch?: number;
  [key: string]: unknown;
}

export interface SupervisorEvents {
  log: [entry: LogEntry];
  /** A generation reported something on its status pipe. */
  status: [epoch: number, report: StatusReport];
  /** A reload (SIGHUP) starts this epoch. */
  reloading: [epoch: number];
  /** This epoch took over and serves (the first one too). */
  tookOver: [epoch: number];
  /** This starting epoch failed or exited before taking over; the serving one keeps serving. */
  reloadFailed: [epoch: number, reason: string];
  /** Epoch `from` no longer serves (it died after taking over, or an operator rolled it back) and the older `to`, still draining, serves again. */
  rolledBack: [from: number, to: number];
  /** SIGTERM/SIGINT, or nothing left serving: every generation is told to stop. */
  stopping: [];
  /** Every generation is gone; the supervisor should exit with this code. */
  done: [code: number];
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly generations: SupervisedGeneration[] = [];
  private baseId: number | undefined;
  private restartQueued = false;
  private stopping = false;
  private exitCode = 0;
  private readonly killTimeoutMs: number;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.killTimeoutMs = options.killTimeoutMs ?? 30_000;
    this.baseId = options.engine.useDynamicBaseId ? undefined : options.engine.baseId;
  }

  get live(): SupervisedGeneration[] {
    return this.generations.filter((g) => g.phase !== 'exited');
  }

  /** The newest generation that has taken over. */
  get serving(): SupervisedGeneration | undefined {
    return this.generations.findLast((g) => g.phase === 'serving');
  }

  start(): void {
    this.launch(this.options.engine.restartEpoch ?? 0, performance.now());
  }

  /** SIGHUP: the next epoch, or later if one is still starting (never two at once). */
  restart(): void {
    if (this.stopping) return;
    const asked = performance.now();
    if (this.live.some((g) => g.phase === 'starting')) {
      if (!this.restartQueued) this.log('info', 'restart queued: a generation is still starting');
      this.restartQueued = true;
      return;
    }
    const serving = this.serving;
    if (!serving) return this.log('warn', 'restart ignored: no generation is serving');
    this.emit('reloading', serving.epoch + 1);
    this.launch(serving.epoch + 1, asked);
  }

  /** SIGTERM/SIGINT: every generation stops gracefully; SIGKILL after the kill timeout. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.stopping) return;
    this.stopping = true;
    this.log('info', `stopping ${this.live.length} generation(s) on ${signal}`);
    this.emit('stopping');
    this.signalAll('SIGTERM');
    setTimeout(() => {
      for (const g of this.live) {
        this.log('warn', `epoch ${g.epoch} still running ${this.killTimeoutMs} ms after SIGTERM: SIGKILL`, g.epoch);
        g.process.kill('SIGKILL');
      }
    }, this.killTimeoutMs).unref();
    this.finishIfDone();
  }

  signalAll(signal: NodeJS.Signals): void {
    for (const g of this.live) g.process.kill(signal);
  }

  private launch(epoch: number, askedAt: number): void {
    const first = this.generations.length === 0;
    const env = {
      ...process.env,
      ...optionsToEnv({
        ...this.options.engine,
        restartEpoch: epoch,
        baseId: this.baseId,
        useDynamicBaseId: first && this.options.engine.useDynamicBaseId,
      }),
      [STATUS_FD_ENV]: '3',
    };
    const child = spawn(this.options.command, this.options.args, { env, stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
    const generation: SupervisedGeneration = { epoch, pid: child.pid ?? 0, phase: 'starting', askedAt, phases: {}, process: child };
    this.generations.push(generation);
    if (child.pid !== undefined) this.log('info', `epoch ${epoch} starting (pid ${child.pid})`, epoch, { pid: child.pid });
    child.on('error', (error) => {
      this.log('error', `epoch ${epoch} could not start: ${error.message}`, epoch);
      // A command that could not be spawned never exits: it ends here.
      if (child.pid === undefined) this.onExit(generation, null, null);
    });
    if (child.pid === undefined) return;
    createInterface({ input: child.stdio[3] as Readable }).on('line', (line) => this.onStatus(generation, line));
    child.on('exit', (code, signal) => this.onExit(generation, code, signal));
    // The parent gives up on its child childInitTimeoutS after its hello, and the child then fails.
    // One that hangs instead would block every restart: we end it, later than the parent would.
    const { engine } = this.options;
    const startTimeoutMs = (engine.childInitTimeoutS ?? defaultOptions.childInitTimeoutS) * 1000 + (engine.handshakeTimeoutMs ?? defaultOptions.handshakeTimeoutMs);
    setTimeout(() => {
      if (generation.phase !== 'starting') return;
      generation.failure = `did not take over within ${startTimeoutMs / 1000} s`;
      this.log('error', `epoch ${epoch} ${generation.failure}: SIGKILL (it accepts nothing before taking over)`, epoch);
      child.kill('SIGKILL');
    }, startTimeoutMs).unref();
  }

  private onStatus(g: SupervisedGeneration, line: string): void {
    let report: StatusReport;
    try {
      report = JSON.parse(line) as StatusReport;
    } catch {
      return this.log('warn', `epoch ${g.epoch} wrote a status line that is not JSON`, g.epoch);
    }
    this.emit('status', g.epoch, report);
    switch (report.event) {
      case 'baseId':
        this.baseId = report.baseId;
        return this.log('info', `using base id ${report.baseId}`, g.epoch);
      case 'takenOver':
        return this.onTakenOver(g, report);
      case 'failed':
        g.failure = `${report.message} (${report.code})`;
        return this.log('error', `epoch ${g.epoch} failed: ${g.failure}`, g.epoch);
      case 'warning':
        return this.log('warn', `epoch ${g.epoch}: ${report.message}`, g.epoch);
      case 'transition':
        if (report.machine === 'child') g.phases[report.from] = report.inStateMs;
        return;
      case 'retired':
        return this.log('info', `epoch ${g.epoch} retired socket ${report.index} of ${report.listener} (its queue quiet after ${report.waitedMs} ms)`, g.epoch, { ...report });
      case 'released':
        return this.log('info', `epoch ${g.epoch} releases ${report.listeners.join(', ')}: no longer configured; serving what is queued, then closing`, g.epoch);
    }
  }

  private onTakenOver(g: SupervisedGeneration, report: Extract<StatusReport, { event: 'takenOver' }>): void {
    if (g.phase !== 'starting') return;
    for (const older of this.generations) {
      if (older.phase !== 'serving') continue;
      older.phase = 'draining';
      // Without hot restart no child will ever tell it to drain: stopping it is ours to do.
      if (this.options.engine.disableHotRestart) older.process.kill('SIGTERM');
    }
    g.phase = 'serving';
    const sinceAsked = Math.round(performance.now() - g.askedAt);
    const phases = Object.entries(g.phases).map(([state, ms]) => `${state} ${ms.toFixed(1)}`).join(', ');
    this.log(
      'info',
      `epoch ${g.epoch} took over ${sinceAsked} ms after the restart was asked (inherited ${report.inherited} sockets, created ${report.created}, surplus ${report.surplus}; ms in ${phases})`,
      g.epoch,
      { tookOverMs: sinceAsked, phases: g.phases, ...report },
    );
    this.emit('tookOver', g.epoch);
    if (this.restartQueued) {
      this.restartQueued = false;
      this.restart();
    }
  }

  private onExit(g: SupervisedGeneration, code: number | null, signal: NodeJS.Signals | null): void {
    const was = g.phase;
    if (was === 'exited') return;
    g.phase = 'exited';
    const how = signal ? `signal ${signal}` : code === null ? 'never started' : `code ${code}`;
    if (this.stopping) {
      this.log('info', `epoch ${g.epoch} exited (${how})`, g.epoch);
    } else if (was === 'starting') {
      const serving = this.serving;
      this.log('error', `epoch ${g.epoch} exited (${how}) before taking over; ${serving ? `epoch ${serving.epoch} keeps serving` : 'nothing is serving'}`, g.epoch);
      if (!serving) return this.fail();
      this.emit('reloadFailed', g.epoch, g.failure ?? `exited (${how}) before taking over`);
      if (this.restartQueued) {
        this.restartQueued = false;
        this.restart();
      }
    } else if (was === 'serving') {
      this.log('error', `epoch ${g.epoch}, the serving generation, exited (${how}): stopping the rest so a service manager restarts baton`, g.epoch);
      return this.fail();
    } else {
      this.log(code === 0 || signal ? 'info' : 'warn', `draining epoch ${g.epoch} exited (${how})`, g.epoch);
    }
    this.finishIfDone();
  }

  private fail(): void {
    this.exitCode = 1;
    this.stop('SIGTERM');
  }

  private finishIfDone(): void {
    if (this.stopping && this.live.length === 0) this.emit('done', this.exitCode);
  }

  private log(level: LogEntry['level'], message: string, epoch?: number, extra: Record<string, unknown> = {}): void {
    this.emit('log', { level, message, ...(epoch === undefined ? {} : { epoch }), ...extra });
  }
}
