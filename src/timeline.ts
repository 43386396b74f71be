// When this process reached each step on its way to serving, in ms since it
// started (performance.now(), whose origin is the process's start): the
// generation reports them as it takes over, and the supervisor logs them as
// ms after the restart was asked. The first mark is taken as baton's code
// begins to load (index.ts imports this module first), so everything before
// it is Node's start-up and the application's own imports.

const marks: Record<string, number> = { baton: round(performance.now()) };

/** Marks `step` now; a step is marked once (its first time counts). */
export function mark(step: string): void {
  marks[step] ??= round(performance.now());
}

/** Every step marked so far, and when the process started (Unix ms), to place them on another process's clock. */
export function timeline(): { startedAt: number; marks: Record<string, number> } {
  return { startedAt: round(performance.timeOrigin), marks: { ...marks } };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
