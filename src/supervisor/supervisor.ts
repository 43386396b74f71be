// Envoy's hot-restarter, for baton generations, fixed where it hurts: a
// failing new epoch never takes the serving one down, restarts asked for
// while one is starting are queued and coalesced, older generations drain on
// their own deadlines while newer ones come and go, and a serving generation
// that dies hands back to the one it took over from while that one still
// drains (rollback). Every outcome is rendered here, once, from the
// generations' status reports: the log, `baton reload|status|rollback` and
// the Supervisor's events all read the same.

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { supervisorAddress } from '../channel/address';
import { optionsToEnv, resolveOptions, type HotRestartOptions } from '../options';
import { STATUS_FD_ENV, type StatusReport } from '../restart/status';
import { SupervisorControl } from './control';
import type { CommandOutcome, GenerationState, SupervisorStatus } from './messages';
import { AdoptedProcess, type GenerationProcess } from './process';
import { checkNewImage, execImage, type Image } from './upgrade';
import { STATE_VERSION, type CarriedOptions, type UpgradeState } from './upgrade-state';

export type GenerationPhase = GenerationState;
type TakenOver = Extract<StatusReport, { event: 'takenOver' }>;
type Waiter = (outcome: CommandOutcome) => void;

export interface SupervisedGeneration {
  epoch: number;
  /** The epoch that served when it started: the parent it takes over from (none for the first, nor without hot restart). */
  parentEpoch?: number;
  pid: number;
  /** serving: accepts; draining: drains as a parent, and accepts again if its child goes away; stopping: told to stop. */
  phase: GenerationPhase;
  /** Started by a reload (SIGHUP, `baton reload`), not as the first generation. */
  reload: boolean;
  /** When the restart that started it was asked for (performance.now()). */
  askedAt: number;
  /** Milliseconds its child machine spent in each state on the way to taking over. */
  phases: Record<string, number>;
  process: GenerationProcess;
  /** Its status pipe, read as JSON lines; a socket made of the pipe's fd after an upgrade. */
  statusInput?: Readable;
  /** Reaped, and reported once its last status lines are read. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  tookOverAt?: number;
  takenOver?: TakenOver;
  /** Connections open at its last load report. */
  connections?: number;
  /** Why it did not take over: its own report, or our start deadline. */
  failure?: string;
  /** Reloads waiting for it to take over or fail. */
  waiters: Waiter[];
  /** Rollbacks waiting for it to accept again. */
  resumeWaiters: Array<(reason: string) => void>;
  startDeadline?: NodeJS.Timeout;
}

export interface SupervisorOptions {
  command: string;
  args: string[];
  /** Handed to every generation in its environment (epoch, parent epoch and base id are set per generation). */
  engine: Partial<HotRestartOptions>;
  /** SIGKILL what is still running this long after SIGTERM. Default 30 s. */
  killTimeoutMs?: number;
  /** When the serving generation dies: 'auto' (default) lets its draining parent serve again; 'off' stops everything. */
  rollback?: 'auto' | 'off';
  /** This package's version, shown by `baton status`. */
  version: string;
  /** What `baton upgrade` needs and carries across the exec that the supervisor itself does not use; without it, upgrades are refused. */
  upgrade?: Image & Pick<CarriedOptions, 'log' | 'pidFile'> & { systemd?: NonNullable<UpgradeState['systemd']> };
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
  /** A reload (SIGHUP, `baton reload`) starts this epoch. */
  reloading: [epoch: number];
  /** This epoch took over and serves (the first one too). */
  tookOver: [epoch: number];
  /** The epoch a reload started failed or exited before taking over; the serving one keeps serving. */
  reloadFailed: [epoch: number, reason: string];
  /** Epoch `from` no longer serves (it died after taking over, or an operator rolled it back) and the older `to`, still draining, serves again. */
  rolledBack: [from: number, to: number];
  /** `baton upgrade` passed its dry run: this image execs the new one now. */
  upgrading: [from: string, to: string];
  /** The exec of an upgrade failed (after 'upgrading'); this image runs on. A refusal before is only logged. */
  upgradeFailed: [reason: string];
  /** This image is the new one of an upgrade and has adopted every generation. */
  upgraded: [serving: number | undefined, message: string];
  /** SIGTERM/SIGINT, or nothing left serving: every generation is told to stop. */
  stopping: [];
  /** Every generation is gone; the supervisor should exit with this code. */
  done: [code: number];
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  /** Running generations, oldest first; one that exited is forgotten. */
  private readonly generations: SupervisedGeneration[] = [];
  private baseId: number | undefined;
  private highestEpoch: number | undefined;
  /** Reloads asked for while a generation starts: one restart, later. */
  private queued: Waiter[] | undefined;
  private stopping = false;
  private upgrading = false;
  private exitCode = 0;
  private restarts = 0;
  private rollbacks = 0;
  private readonly killTimeoutMs: number;
  private readonly engine: HotRestartOptions;
  private readonly control: SupervisorControl;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.killTimeoutMs = options.killTimeoutMs ?? 30_000;
    this.engine = resolveOptions(options.engine);
    this.baseId = options.engine.useDynamicBaseId ? undefined : this.engine.baseId;
    this.control = new SupervisorControl(
      { reload: () => this.reload(), rollback: () => this.rollback(), status: () => this.status(), upgrade: (answer) => this.upgrade(answer) },
      { socketMode: this.engine.socketMode, allowedUids: this.engine.allowedUids, warn: (message) => this.log('warn', message) },
    );
  }

  /** The generation that accepts. */
  get serving(): SupervisedGeneration | undefined {
    return this.generations.findLast((g) => g.phase === 'serving');
  }

  private get starting(): SupervisedGeneration | undefined {
    return this.generations.find((g) => g.phase === 'starting');
  }

  start(): void {
    this.listenForCommands();
    this.launch(this.engine.restartEpoch, undefined, performance.now(), [], false);
  }

  /** SIGHUP: the next epoch, or later if one is still starting (never two at once). */
  restart(): void {
    void this.reload();
  }

  /** `baton reload`: like SIGHUP, and resolves with the outcome of the epoch it starts (or the queued one). */
  reload(): Promise<CommandOutcome> {
    return new Promise((resolve) => {
      if (!this.starting || this.stopping) return this.startReload([resolve]);
      if (!this.queued) this.log('info', 'restart queued: a generation is still starting');
      this.queued ??= [];
      this.queued.push(resolve);
    });
  }

  /**
   * `baton rollback`: the serving generation stops (gracefully: it drains)
   * and the one it took over from, while that one still drains, accepts
   * again. Resolves once it reported accepting again.
   */
  rollback(): Promise<CommandOutcome> {
    const refuse = (reason: string) => Promise.resolve(this.failure(`rollback refused: ${reason}`, { reason }));
    if (this.stopping) return refuse('the supervisor is stopping');
    const starting = this.starting;
    if (starting) return refuse(`epoch ${starting.epoch} is starting: roll back once it has taken over or failed`);
    const serving = this.serving;
    const parent = serving && this.drainingParentOf(serving);
    if (!serving || !parent) {
      return refuse(
        `${serving ? `epoch ${serving.epoch}` : 'nothing'} serves and no generation it took over from still drains ` +
          '(one drains for --parent-shutdown-time-s after the next takes over): there is nothing to roll back to',
      );
    }
    const timeoutMs = this.engine.requestTimeoutMs;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve(this.failure(`epoch ${parent.epoch} did not report accepting again within ${timeoutMs} ms`, { epoch: parent.epoch, reason: 'timeout' }));
      }, timeoutMs);
      parent.resumeWaiters.push((reason) => {
        clearTimeout(timer);
        const message = `rolled back from epoch ${serving.epoch} to epoch ${parent.epoch}: epoch ${parent.epoch} accepts again (${reason}), epoch ${serving.epoch} drains`;
        resolve({ ok: true, message, epoch: parent.epoch, serving: parent.epoch, from: serving.epoch, to: parent.epoch });
      });
      // Its graceful shutdown lets go of its parent at once, which then accepts again: nothing waits in a queue nobody serves.
      serving.phase = 'stopping';
      serving.process.kill('SIGTERM');
      this.rolledBack(serving, parent, 'warn', `rolled back from epoch ${serving.epoch} to epoch ${parent.epoch} (asked)`);
    });
  }

  /**
   * `baton upgrade`, SIGUSR2: re-executes this process in place with the
   * code now on disk, checked first by a dry run of it. On success it never
   * resolves: the new image answers on `answer` (the client's connection),
   * which crosses the exec. On failure everything runs on as before.
   */
  async upgrade(answer?: { fd: number; re: number }): Promise<CommandOutcome> {
    const image = this.options.upgrade;
    const refusal = !image ? 'this supervisor was not started by the baton command line' : this.upgrading ? 'an upgrade is already under way' : this.upgradeRefusal();
    if (!image || refusal) return this.upgradeFailed(`upgrade refused: ${refusal}`);
    this.upgrading = true;
    try {
      let to: string;
      try {
        to = (await checkNewImage(image, this.state(image, answer))).batonVersion;
      } catch (error) {
        return this.upgradeFailed(`upgrade refused: ${(error as Error).message}; baton ${this.options.version} runs on`);
      }
      const changed = this.upgradeRefusal(); // while the dry run ran
      if (changed) return this.upgradeFailed(`upgrade refused: ${changed}`);
      const from = this.options.version;
      this.log('info', `upgrading baton ${from} -> ${to}: re-executing in place (pid ${process.pid}), ${this.generations.length} generation(s) kept`);
      this.emit('upgrading', from, to);
      try {
        execImage(image, this.state(image, answer));
      } catch (error) {
        const outcome = this.upgradeFailed(`upgrade failed: ${(error as Error).message}; baton ${from} runs on`);
        this.emit('upgradeFailed', outcome.message);
        return outcome;
      }
      throw new Error('unreachable: execve returned without an error');
    } finally {
      this.upgrading = false;
    }
  }

  private upgradeRefusal(): string | undefined {
    if (this.stopping) return 'the supervisor is stopping';
    const starting = this.starting;
    if (starting) return `epoch ${starting.epoch} is starting: upgrade once it has taken over or failed`;
    const resuming = this.generations.find((g) => g.resumeWaiters.length > 0);
    if (resuming) return `a rollback waits for epoch ${resuming.epoch} to accept again`;
    return undefined;
  }

  private upgradeFailed(message: string): CommandOutcome {
    this.log('error', message);
    return this.failure(message, { reason: message.replace(/^upgrade (refused|failed): /, '') });
  }

  /** Everything this image knows, for the next one. */
  private state(image: NonNullable<SupervisorOptions['upgrade']>, answer: UpgradeState['answer'] = null): UpgradeState {
    const now = performance.now();
    const { command, args, engine, rollback = 'auto' } = this.options;
    return {
      stateVersion: STATE_VERSION,
      batonVersion: this.options.version,
      baseId: this.baseId ?? null,
      highestEpoch: this.highestEpoch ?? null,
      restarts: this.restarts,
      rollbacks: this.rollbacks,
      options: { command, args, engine, killTimeoutMs: this.killTimeoutMs, rollback, log: image.log, ...(image.pidFile === undefined ? {} : { pidFile: image.pidFile }) },
      generations: this.generations.map((g) => ({
        epoch: g.epoch,
        ...(g.parentEpoch === undefined ? {} : { parentEpoch: g.parentEpoch }),
        pid: g.pid,
        phase: g.phase,
        reload: g.reload,
        ...(g.tookOverAt === undefined ? {} : { tookOverAgoMs: Math.round(now - g.tookOverAt) }),
        ...(g.takenOver === undefined ? {} : { takenOver: g.takenOver }),
        ...(g.connections === undefined ? {} : { connections: g.connections }),
        statusFd: fdOf(g.statusInput),
        ...(g.exit ? { exit: g.exit } : {}),
      })),
      controlFd: this.control.fd ?? null,
      systemd: image.systemd ?? null,
      answer,
    };
  }

  /**
   * The new image of an upgrade, in place of start(): every generation of
   * the state is adopted (its process through a pidfd, its status pipe, its
   * counters), the control socket too, and the client that asked is answered.
   */
  adopt(state: UpgradeState): void {
    const now = performance.now();
    this.baseId = state.baseId ?? undefined;
    this.highestEpoch = state.highestEpoch ?? undefined;
    this.restarts = state.restarts;
    this.rollbacks = state.rollbacks;
    if (state.controlFd !== null && this.baseId !== undefined) this.control.adopt(supervisorAddress(this.engine.socketPath, this.baseId), state.controlFd);
    for (const carried of state.generations) {
      const generation: SupervisedGeneration = {
        epoch: carried.epoch,
        ...(carried.parentEpoch === undefined ? {} : { parentEpoch: carried.parentEpoch }),
        pid: carried.pid,
        phase: carried.phase,
        reload: carried.reload,
        askedAt: now,
        phases: {},
        process: new AdoptedProcess(carried.pid, carried.exit),
        ...(carried.tookOverAgoMs === undefined ? {} : { tookOverAt: now - carried.tookOverAgoMs }),
        ...(carried.takenOver === undefined ? {} : { takenOver: carried.takenOver }),
        ...(carried.connections === undefined ? {} : { connections: carried.connections }),
        waiters: [],
        resumeWaiters: [],
      };
      this.generations.push(generation);
      // A pipe whose end of file came before the exec is read as already ended.
      this.watch(generation, carried.statusFd < 0 ? Readable.from([]) : new Socket({ fd: carried.statusFd, readable: true, writable: false }));
    }
    const kept = state.generations.length;
    const message = `upgraded baton ${state.batonVersion} -> ${this.options.version} in place (pid ${process.pid}), ${kept} generation${kept === 1 ? '' : 's'} kept`;
    this.log('info', message);
    this.emit('upgraded', this.serving?.epoch, message);
    if (state.answer) this.control.answerCarried(state.answer, { ok: true, message, serving: this.serving?.epoch ?? null });
    this.listenForCommands();
  }

  status(): SupervisorStatus {
    const now = performance.now();
    return {
      pid: process.pid,
      batonVersion: this.options.version,
      baseId: this.baseId ?? null,
      socket: this.control.address?.display ?? '',
      restarts: this.restarts,
      rollbacks: this.rollbacks,
      generations: this.generations.map((g) => ({
        epoch: g.epoch,
        pid: g.pid,
        state: g.phase,
        workers: g.takenOver?.workers ?? null,
        listeners: g.takenOver?.listeners ?? [],
        sinceTakeOverMs: g.tookOverAt === undefined ? null : Math.round(now - g.tookOverAt),
        connections: g.connections ?? null,
      })),
    };
  }

  /** SIGTERM/SIGINT: every generation stops gracefully; SIGKILL after the kill timeout. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.stopping) return;
    this.stopping = true;
    this.emit('stopping');
    this.log('info', `stopping ${this.generations.length} generation(s) on ${signal}`);
    this.control.close();
    this.answerQueued();
    for (const g of this.generations) g.phase = 'stopping';
    this.signalAll('SIGTERM');
    setTimeout(() => {
      for (const g of this.generations) {
        this.log('warn', `epoch ${g.epoch} still running ${this.killTimeoutMs} ms after SIGTERM: SIGKILL`, g.epoch);
        g.process.kill('SIGKILL');
      }
    }, this.killTimeoutMs).unref();
    this.finishIfDone();
  }

  signalAll(signal: NodeJS.Signals): void {
    for (const g of this.generations) g.process.kill(signal);
  }

  private startReload(waiters: Waiter[]): void {
    const fail = (reason: string) => {
      for (const waiter of waiters) waiter(this.failure(`reload refused: ${reason}`, { reason }));
    };
    if (this.stopping) return fail('the supervisor is stopping');
    const serving = this.serving;
    if (!serving) {
      this.log('warn', 'restart ignored: no generation is serving');
      return fail('no generation is serving');
    }
    // A new number every time: a failed or rolled-back epoch may still hold its name, and logs stay unambiguous.
    const epoch = (this.highestEpoch ?? -1) + 1;
    this.emit('reloading', epoch);
    this.launch(epoch, this.engine.disableHotRestart ? undefined : serving.epoch, performance.now(), waiters, true);
  }

  /** The reloads queued behind a start: one restart for all of them, now. */
  private runQueued(): void {
    const waiters = this.queued;
    this.queued = undefined;
    if (waiters) this.startReload(waiters);
  }

  private answerQueued(): void {
    const waiters = this.queued ?? [];
    this.queued = undefined;
    for (const waiter of waiters) waiter(this.failure('reload refused: the supervisor is stopping', { reason: 'stopping' }));
  }

  private launch(epoch: number, parentEpoch: number | undefined, askedAt: number, waiters: Waiter[], reload: boolean): void {
    const first = this.highestEpoch === undefined;
    this.highestEpoch = Math.max(epoch, this.highestEpoch ?? epoch);
    const env = {
      ...process.env,
      ...optionsToEnv({
        ...this.options.engine,
        restartEpoch: epoch,
        ...(parentEpoch === undefined ? {} : { parentEpoch }),
        baseId: this.baseId,
        useDynamicBaseId: first && this.options.engine.useDynamicBaseId,
      }),
      [STATUS_FD_ENV]: '3',
    };
    const child = spawn(this.options.command, this.options.args, { env, stdio: ['inherit', 'inherit', 'inherit', 'pipe'] });
    const pid = child.pid;
    const generation: SupervisedGeneration = {
      epoch,
      ...(parentEpoch === undefined ? {} : { parentEpoch }),
      pid: pid ?? 0,
      phase: 'starting',
      reload,
      askedAt,
      phases: {},
      process: child,
      waiters,
      resumeWaiters: [],
    };
    this.generations.push(generation);
    if (pid !== undefined) this.log('info', `epoch ${epoch} starting (pid ${pid})`, epoch, { pid });
    child.on('error', (error) => {
      this.log('error', `epoch ${epoch} could not start: ${error.message}`, epoch);
      // A command that could not be spawned never exits: it ends here.
      if (pid === undefined) this.onExit(generation, null, null);
    });
    if (pid === undefined) return;
    this.watch(generation, child.stdio[3] as Readable);
    // The parent gives up on its child childInitTimeoutS after its hello, and the child then fails.
    // One that hangs instead would block every restart: we end it, later than the parent would.
    const startTimeoutMs = this.engine.childInitTimeoutS * 1000 + this.engine.handshakeTimeoutMs;
    generation.startDeadline = setTimeout(() => {
      generation.failure = `did not take over within ${startTimeoutMs / 1000} s: killed`;
      this.log('error', `epoch ${epoch} did not take over within ${startTimeoutMs / 1000} s: SIGKILL (it accepts nothing before taking over)`, epoch);
      child.kill('SIGKILL');
    }, startTimeoutMs);
    generation.startDeadline.unref();
  }

  /** Its status reports and its exit, the same whichever image spawned it. */
  private watch(generation: SupervisedGeneration, input: Readable): void {
    generation.statusInput = input;
    const reports = createInterface({ input });
    let reportsEnded = false;
    reports.on('line', (line) => this.onStatus(generation, line));
    reports.on('close', () => (reportsEnded = true));
    generation.process.on('exit', (code, signal) => {
      generation.exit = { code, signal };
      // Its last reports (why it failed, say) may still be in the pipe: read them first, for at most a second.
      const exited = () => this.onExit(generation, code, signal);
      if (reportsEnded) return exited();
      const timer = setTimeout(exited, 1000);
      reports.on('close', () => {
        clearTimeout(timer);
        exited();
      });
    });
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
        this.log('info', `using base id ${report.baseId}`, g.epoch);
        return this.listenForCommands();
      case 'takenOver':
        return this.onTakenOver(g, report);
      case 'failed':
        g.failure = `${report.message} (${report.code})`;
        return this.log('error', `epoch ${g.epoch} failed: ${g.failure}`, g.epoch, report.stack ? { stack: report.stack } : {});
      case 'warning':
        return this.log('warn', `epoch ${g.epoch}: ${report.message}`, g.epoch);
      case 'transition':
        if (report.machine === 'child') g.phases[report.from] = report.inStateMs;
        return;
      case 'retired':
        return this.log('info', `epoch ${g.epoch} retired socket ${report.index} of ${report.listener} (its queue quiet after ${report.waitedMs} ms)`, g.epoch, { ...report });
      case 'released':
        return this.log('info', `epoch ${g.epoch} releases ${report.listeners.join(', ')}: no longer configured; serving what is queued, then closing`, g.epoch);
      case 'load':
        g.connections = report.connections;
        return;
      case 'resumed':
        this.log('info', `epoch ${g.epoch} accepts again: ${report.reason}`, g.epoch);
        for (const waiter of g.resumeWaiters.splice(0)) waiter(report.reason);
        return;
    }
  }

  private onTakenOver(g: SupervisedGeneration, report: TakenOver): void {
    if (g.phase !== 'starting') return;
    clearTimeout(g.startDeadline);
    const parent = this.generations.find((older) => older.phase === 'serving' && older.epoch === g.parentEpoch);
    for (const older of this.generations) {
      if (older.phase !== 'serving') continue;
      if (older === parent) {
        older.phase = 'draining';
        continue;
      }
      // Not its parent (hot restart is off, or its parent went away as it started): no child will ever tell it to drain.
      older.phase = 'stopping';
      older.process.kill('SIGTERM');
    }
    g.phase = 'serving';
    g.tookOverAt = performance.now();
    g.takenOver = report;
    if (g.reload) this.restarts++;
    const sinceAsked = Math.round(g.tookOverAt - g.askedAt);
    const phases = Object.entries(g.phases).map(([state, ms]) => `${state} ${ms.toFixed(1)}`).join(', ');
    // A generation of an older baton (its own dependency, or one that started before an upgrade) reports no timeline.
    const timeline = report.timeline === undefined ? undefined : sinceRestartAsked(report.timeline, g.askedAt);
    const steps = timeline ? `; ms after the restart was asked: ${Object.entries(timeline).map(([step, ms]) => `${step} ${ms}`).join(', ')}` : '';
    this.log(
      'info',
      `epoch ${g.epoch} took over ${sinceAsked} ms after the restart was asked (inherited ${report.inherited} sockets, created ${report.created}, surplus ${report.surplus}; ms in ${phases}${steps})`,
      g.epoch,
      { tookOverMs: sinceAsked, phases: g.phases, ...report, ...(timeline ? { timeline } : {}) },
    );
    this.emit('tookOver', g.epoch);
    this.listenForCommands(); // should another supervisor have held the name, it may be gone
    const workers = parent?.takenOver?.workers === undefined ? `${report.workers}` : `${parent.takenOver.workers} -> ${report.workers}`;
    const message = `epoch ${g.epoch} took over in ${sinceAsked} ms: ${workers} workers, ${report.inherited} sockets inherited, ${report.created} created`;
    for (const waiter of g.waiters.splice(0)) {
      waiter({
        ok: true,
        message,
        epoch: g.epoch,
        serving: g.epoch,
        tookOverMs: sinceAsked,
        workers: report.workers,
        ...(parent?.takenOver ? { parentWorkers: parent.takenOver.workers } : {}),
        inherited: report.inherited,
        created: report.created,
      });
    }
    this.runQueued();
  }

  private onExit(g: SupervisedGeneration, code: number | null, signal: NodeJS.Signals | null): void {
    const at = this.generations.indexOf(g);
    if (at < 0) return;
    this.generations.splice(at, 1);
    clearTimeout(g.startDeadline);
    const was = g.phase;
    const how = signal ? `signal ${signal}` : code === null ? 'never started' : `code ${code}`;
    if (g.tookOverAt === undefined) return this.onFailedStart(g, how); // starting, or stopped while it started
    if (this.stopping) {
      this.log('info', `epoch ${g.epoch} exited (${how})`, g.epoch);
    } else if (was === 'serving') {
      const parent = this.options.rollback === 'off' ? undefined : this.drainingParentOf(g);
      if (!parent) {
        this.log('error', `epoch ${g.epoch}, the serving generation, exited (${how}): stopping the rest so a service manager restarts baton`, g.epoch);
        return this.fail();
      }
      // Its parent still holds every socket it had and accepts again by itself once our child's channel closes.
      const after = ((performance.now() - (g.tookOverAt ?? 0)) / 1000).toFixed(1);
      this.rolledBack(g, parent, 'error', `epoch ${g.epoch} exited (${how}) ${after} s after take-over: rolled back to epoch ${parent.epoch}`);
      const connections = g.connections === undefined ? 'an unknown number of connections' : `about ${g.connections} connections`;
      const created = g.takenOver?.created ?? 0;
      const sockets = created > 0 ? ` and ${created} sockets only it held (created at the increase)` : '';
      const unless = signal ? '' : ', unless it served them as it shut down';
      this.log('warn', `${connections} it had open${sockets} were lost with it${unless}`, g.epoch, { lostConnections: g.connections ?? null, lostSockets: created });
    } else {
      this.log(code === 0 || signal ? 'info' : 'warn', `draining epoch ${g.epoch} exited (${how})`, g.epoch);
    }
    this.finishIfDone();
  }

  private onFailedStart(g: SupervisedGeneration, how: string): void {
    const serving = this.serving;
    const reason = g.failure ?? (this.stopping ? 'stopped: the supervisor is stopping' : `exited (${how}) before taking over`);
    if (this.stopping) {
      this.log('info', `epoch ${g.epoch} exited (${how})`, g.epoch);
    } else {
      this.log('error', `epoch ${g.epoch} exited (${how}) before taking over; ${serving ? `epoch ${serving.epoch} keeps serving` : 'nothing is serving'}`, g.epoch);
    }
    if (g.reload && !this.stopping) this.emit('reloadFailed', g.epoch, reason);
    const outcome = this.failure(`epoch ${g.epoch} failed: ${reason}; ${serving ? `epoch ${serving.epoch} still serving` : 'nothing is serving'}`, {
      epoch: g.epoch,
      reason,
    });
    for (const waiter of g.waiters.splice(0)) waiter(outcome);
    if (!serving && !this.stopping) return this.fail();
    this.runQueued();
    this.finishIfDone();
  }

  /** The generation `g` took over from, while it drains: it accepts again if `g` goes away. */
  private drainingParentOf(g: SupervisedGeneration): SupervisedGeneration | undefined {
    return this.generations.find((older) => older.phase === 'draining' && older.epoch === g.parentEpoch);
  }

  private rolledBack(from: SupervisedGeneration, to: SupervisedGeneration, level: LogEntry['level'], message: string): void {
    to.phase = 'serving';
    this.rollbacks++;
    this.log(level, message, from.epoch, { rolledBackTo: to.epoch });
    this.emit('rolledBack', from.epoch, to.epoch);
  }

  private failure(message: string, fields: Partial<CommandOutcome>): CommandOutcome {
    return { ok: false, message, serving: this.serving?.epoch ?? null, ...fields };
  }

  /** The control socket, once the base id is known (the first generation chooses it with --use-dynamic-base-id). */
  private listenForCommands(): void {
    if (this.baseId === undefined || this.stopping) return;
    this.control.listen(supervisorAddress(this.engine.socketPath, this.baseId));
  }

  private fail(): void {
    this.exitCode = 1;
    this.stop('SIGTERM');
  }

  private finishIfDone(): void {
    if (this.stopping && this.generations.length === 0) this.emit('done', this.exitCode);
  }

  private log(level: LogEntry['level'], message: string, epoch?: number, extra: Record<string, unknown> = {}): void {
    this.emit('log', { level, message, ...(epoch === undefined ? {} : { epoch }), ...extra });
  }
}

/**
 * A generation's start-up steps as ms after its restart was asked, in the
 * order they happened: 'process' (it started), then its own marks
 * (src/timeline.ts), placed on our clock by when it started.
 */
export function sinceRestartAsked(timeline: NonNullable<TakenOver['timeline']>, askedAt: number): Record<string, number> {
  const started = timeline.startedAt - (performance.timeOrigin + askedAt);
  const steps: Array<[string, number]> = [['process', started], ...Object.entries(timeline.marks).map(([step, ms]): [string, number] => [step, started + ms])];
  return Object.fromEntries(steps.sort((a, b) => a[1] - b[1]).map(([step, ms]) => [step, Math.round(ms)]));
}

/** The fd under a pipe's stream, -1 once it is closed (its end of file came). */
function fdOf(stream: Readable | undefined): number {
  const fd = (stream as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
