// The supervisor's own options: rows of the same shape as the engine's
// (src/options.ts), so that `baton --help` and the flag checks come from both
// tables, but never handed to a generation (no environment variable).

import type { OptionTable } from '../options';

export interface SupervisorFlags {
  /** SIGKILL what is still running this long after SIGTERM. */
  killTimeoutS: number;
  /** Where to write the supervisor's pid, removed at exit. */
  pidFile?: string;
  /** The format of the log on stderr. */
  log: 'text' | 'json';
}

export const supervisorOptionTable: OptionTable<SupervisorFlags> = {
  killTimeoutS: { flag: 'kill-timeout-s', type: 'integer', unit: 's', min: 0, max: 86_400, default: 30, help: 'SIGKILL generations this long after SIGTERM' },
  pidFile: { flag: 'pid-file', type: 'string', placeholder: 'path', pattern: /^[^\0]+$/, shape: 'a file path', default: undefined, help: "write the supervisor's pid here" },
  log: { flag: 'log', type: 'choice', values: ['text', 'json'], default: 'text', help: 'log format on stderr' },
};
