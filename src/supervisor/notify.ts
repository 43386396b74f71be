// sd_notify(3) for `baton run` under systemd (Type=notify-reload), rendered
// from the supervisor's events alone: READY=1 once the first epoch serves,
// RELOADING=1 then READY=1 around every reload, STOPPING=1, the watchdog, and
// a STATUS= line a person reads in `systemctl status`. `baton upgrade` is a
// reload too: RELOADING=1 from the old image, READY=1 from the new one. A message that cannot
// be sent is a warning in the log: systemd's absence never stops a server.

import { sendDatagram } from '../binding';
import type { LogEntry, Supervisor } from './supervisor';

/** What systemd handed this process in its environment. */
export interface SystemdEnvironment {
  /** NOTIFY_SOCKET: a path, or @name in the abstract namespace. */
  notifySocket: string;
  /** WATCHDOG_USEC as given; absent when unset or when WATCHDOG_PID names another process. */
  watchdogUsec?: string;
}

/**
 * sd_notify's variables, taken out of `env` as sd_notify(unset_environment)
 * and sd_watchdog_enabled(unset_environment) do: every generation inherits the
 * supervisor's environment, and one that talked to systemd itself (a READY=1
 * of its own, before the supervisor's) would lie about the service. Undefined
 * without NOTIFY_SOCKET: not started by systemd as Type=notify.
 */
export function takeSystemdEnvironment(env: NodeJS.ProcessEnv, pid = process.pid): SystemdEnvironment | undefined {
  const { NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: watchdogUsec, WATCHDOG_PID: watchdogPid } = env;
  for (const name of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[name];
  if (!notifySocket) return undefined;
  // WATCHDOG_PID, when set, says which process the watchdog is for (sd_watchdog_enabled(3)).
  const ours = watchdogPid === undefined || watchdogPid === String(pid);
  return { notifySocket, ...(ours && watchdogUsec !== undefined ? { watchdogUsec } : {}) };
}

/** systemd reads at most this many bytes of a notification (NOTIFY_BUFFER_MAX, PIPE_BUF) and drops a longer one. */
const NOTIFY_BUFFER_MAX = 4096;
/** setInterval's longest delay; a longer one would fire every millisecond. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * CLOCK_MONOTONIC in µs, which systemd compares with when it sent SIGHUP: a
 * RELOADING=1 without it, or from before, leaves `systemctl reload` waiting.
 * process.hrtime.bigint() is uv_hrtime(), which on Linux is
 * clock_gettime(CLOCK_MONOTONIC) (libuv src/unix/linux.c, uv__hrtime with
 * UV_CLOCK_PRECISE).
 */
const monotonicUsec = () => process.hrtime.bigint() / 1000n;

export class SystemdNotifier {
  private readonly address: { path: string; abstract: boolean };
  private serving: number | undefined;
  private reload: { epoch: number; startedAt: number } | undefined;
  private ready = false;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly watchdogMs: number | undefined;
  /** The last failure logged, so that a systemd gone away is one warning, not one per watchdog ping. */
  private failing: string | undefined;

  constructor(
    supervisor: Supervisor,
    private readonly env: SystemdEnvironment,
    private readonly log: (entry: LogEntry) => void,
  ) {
    const { notifySocket, watchdogUsec } = env;
    this.address = { path: notifySocket.replace(/^@/, ''), abstract: notifySocket.startsWith('@') };
    if (!/^[@/]/.test(notifySocket)) {
      this.warn(`NOTIFY_SOCKET=${notifySocket} is neither a path nor an @abstract name: systemd is not notified (run baton as a Type=notify-reload service)`);
      return;
    }
    if (watchdogUsec !== undefined) {
      if (/^[1-9]\d*$/.test(watchdogUsec)) this.watchdogMs = Math.min(MAX_TIMER_MS, Math.max(1, Number(watchdogUsec) / 2000));
      else this.warn(`WATCHDOG_USEC=${watchdogUsec} is not a positive number of microseconds: no watchdog pings (check WatchdogSec= in the unit)`);
    }
    supervisor.on('reloading', (epoch) => this.onReloading(epoch));
    supervisor.on('tookOver', (epoch) => this.onTookOver(epoch));
    supervisor.on('reloadFailed', (epoch, reason) => this.onReloadFailed(epoch, reason));
    supervisor.on('rolledBack', (from, to) => this.onRolledBack(from, to));
    supervisor.on('stopping', () => this.onStopping());
    supervisor.on('upgrading', (from, to) => this.send(['RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`], `upgrading baton ${from} -> ${to}${this.servingText()}`));
    supervisor.on('upgradeFailed', (reason) => this.send(['READY=1'], `${reason}${this.servingText()}`));
    supervisor.on('upgraded', (serving, message) => {
      this.serving = serving;
      this.send(['READY=1'], `${message}${this.servingText()}`);
      this.becomeReady();
    });
  }

  private onTookOver(epoch: number): void {
    const reload = this.reload?.epoch === epoch ? this.reload : undefined;
    if (reload) this.reload = undefined;
    this.serving = epoch;
    const took = reload ? ` (took over in ${Math.round(performance.now() - reload.startedAt)} ms)` : '';
    // MAINPID: the supervisor, not the generation that serves, is the process systemd watches and signals.
    this.send([`READY=1`, ...(this.ready ? [] : [`MAINPID=${process.pid}`])], `epoch ${epoch} serving${took}`);
    this.becomeReady();
  }

  /** The first READY=1 of this image (the new one of an upgrade has one too): the watchdog starts. */
  private becomeReady(): void {
    if (this.ready) return;
    this.ready = true;
    // systemd starts the watchdog at READY=1 (service_enter_start_post), and stops it at STOPPING=1.
    if (this.watchdogMs !== undefined) this.watchdog = setInterval(() => this.send(['WATCHDOG=1']), this.watchdogMs).unref();
  }

  private onReloading(epoch: number): void {
    this.reload = { epoch, startedAt: performance.now() };
    this.send(['RELOADING=1', `MONOTONIC_USEC=${monotonicUsec()}`], `reloading: epoch ${epoch} starting${this.servingText()}`);
  }

  /** READY=1 too: the reload is over, and systemd has no way to hear that it failed but from STATUS=. */
  private onReloadFailed(epoch: number, reason: string): void {
    if (this.reload?.epoch === epoch) this.reload = undefined;
    this.send(['READY=1'], `reload to epoch ${epoch} failed: ${reason}${this.servingText()}`);
  }

  private onRolledBack(from: number, to: number): void {
    this.serving = to;
    this.send([], `epoch ${from} rolled back: epoch ${to} serving again`);
  }

  private onStopping(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    this.send(['STOPPING=1'], 'stopping: every generation drains, then baton exits');
  }

  private servingText(): string {
    return this.serving === undefined ? '' : `; epoch ${this.serving} serving`;
  }

  /** One datagram of `fields` and a STATUS= line, cut to what systemd reads: one line, valid UTF-8, NOTIFY_BUFFER_MAX in all. */
  private send(fields: string[], status?: string): void {
    if (status !== undefined) {
      const room = NOTIFY_BUFFER_MAX - Buffer.byteLength([...fields, 'STATUS='].join('\n'));
      fields = [...fields, `STATUS=${fit(status.replace(/[\r\n]+/g, ' '), room)}`];
    }
    const message = fields.join('\n');
    try {
      if (!sendDatagram(this.address.path, this.address.abstract, Buffer.from(message))) throw new Error('its queue is full (systemd is not reading it)');
      if (this.failing !== undefined) this.log({ level: 'info', message: `sd_notify reaches NOTIFY_SOCKET=${this.env.notifySocket} again` });
      this.failing = undefined;
    } catch (error) {
      const why = (error as Error).message;
      if (why === this.failing) return;
      this.failing = why;
      this.warn(`sd_notify to NOTIFY_SOCKET=${this.env.notifySocket} failed (${fields[0]}): ${why}; the same failure again is not logged`);
    }
  }

  private warn(message: string): void {
    this.log({ level: 'warn', message });
  }
}

/** `text` in at most `bytes` bytes of UTF-8, cut with an ellipsis. */
function fit(text: string, bytes: number): string {
  if (Buffer.byteLength(text) <= bytes) return text;
  let cut = text.slice(0, Math.max(0, bytes - 3));
  while (Buffer.byteLength(cut) > bytes - 3) cut = cut.slice(0, -1);
  return `${cut}…`;
}
