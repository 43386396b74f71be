// Warnings about what peers did on our control socket (malformed records,
// refused connections), bounded: anyone of our uid can send junk as fast as
// it likes, and a line per record was about 10 MB of log per 100,000. The
// first few of an interval are logged in full; past them, one summary per
// interval counts what was held back by peer pid and reason. An interval
// with nothing held back ends the flood: the next warning is in full again.

/** Kinds counted per summary; past this, the rest are one 'other' count. */
const MAX_KINDS = 16;

export interface PeerWarningLimits {
  /** Warnings logged in full before counting starts. */
  burst: number;
  intervalMs: number;
}

export class PeerWarnings {
  private timer?: NodeJS.Timeout;
  private logged = 0;
  /** Held back since the last summary, by pid and reason. */
  private readonly counts = new Map<string, { pid: number; reason: string; n: number }>();
  private other = 0;

  constructor(
    private readonly warn: (message: string) => void,
    private readonly limits: PeerWarningLimits = { burst: 5, intervalMs: 10_000 },
  ) {}

  /** `message` is the line in full; it is counted by its reason: the same without what varies from record to record. */
  report(pid: number, message: string): void {
    if (!this.timer) {
      this.logged = 0;
      this.timer = setTimeout(() => this.summarize(true), this.limits.intervalMs).unref();
    }
    if (this.logged < this.limits.burst) {
      this.logged++;
      return this.warn(message);
    }
    const reason = reasonOf(message);
    const key = `${pid} ${reason}`;
    const kind = this.counts.get(key);
    if (kind) kind.n++;
    else if (this.counts.size < MAX_KINDS) this.counts.set(key, { pid, reason, n: 1 });
    else this.other++;
  }

  /** Logs what is held back now (the generation is ending) and ends the interval. */
  flush(): void {
    clearTimeout(this.timer);
    this.summarize(false);
  }

  private summarize(goOn: boolean): void {
    const kinds = [...this.counts.values()].sort((a, b) => b.n - a.n);
    const parts = kinds.map(({ pid, reason, n }) => `${n} from pid ${pid}: ${reason}`);
    if (this.other > 0) parts.push(`${this.other} of other kinds`);
    const total = kinds.reduce((sum, { n }) => sum + n, this.other);
    this.counts.clear();
    this.other = 0;
    // A quiet interval ends the flood: the next warning opens a new one, in full.
    this.timer = undefined;
    if (total === 0) return;
    this.warn(`control socket: ${total} more warnings about peers within ${this.limits.intervalMs / 1000} s, counted, not logged: ${parts.join('; ')}`);
    if (goOn) this.timer = setTimeout(() => this.summarize(true), this.limits.intervalMs).unref();
  }
}

/** A message without its numbers and quoted excerpts: records that differ only there have one reason. */
export function reasonOf(message: string): string {
  return message
    .replace(/"[^"]*(?:"|$)/g, '"…"')
    .replace(/'[^']*(?:'|$)/g, "'…'")
    .replace(/\d+/g, 'N');
}
