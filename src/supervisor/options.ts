// The supervisor's own options: rows of the same shape as the engine's
// (src/options.ts), so that `baton --help` and the flag checks come from both
// tables, but never handed to a generation (no environment variable).

import { optionTable, type OptionTable } from '../options';

export interface SupervisorFlags {
  /** SIGKILL what is still running this long after SIGTERM. */
  killTimeoutS: number;
  /** Where to write the supervisor's pid, removed at exit. */
  pidFile?: string;
  /** The format of the log on stderr; 'details' is text with the stack of an error that ended a generation's start-up (JSON always has it). */
  log: 'text' | 'json' | 'details';
  /** When the serving generation dies: the one it took over from, still draining, serves again ('auto'); or stop everything ('off'). */
  rollback: 'auto' | 'off';
}

export const supervisorOptionTable: OptionTable<SupervisorFlags> = {
  killTimeoutS: { flag: 'kill-timeout-s', type: 'integer', unit: 's', min: 0, max: 86_400, default: 30, help: 'SIGKILL generations this long after SIGTERM' },
  pidFile: { flag: 'pid-file', type: 'string', placeholder: 'path', pattern: /^[^\0]+$/, shape: 'a file path', default: undefined, help: "write the supervisor's pid here" },
  log: {
    flag: 'log',
    type: 'choice',
    values: ['text', 'json', 'details'],
    default: 'text',
    help: "log format on stderr; 'details' is text with the stack of an error that ended a generation's start-up",
  },
  rollback: { flag: 'rollback', type: 'choice', values: ['auto', 'off'], default: 'auto', help: "the serving epoch died: the one before it serves again ('auto'), or stop and exit 1 ('off')" },
};

/** The options of `baton reload|status|rollback`: where the supervisor is, how long to wait, how to print. */
export interface CommandFlags {
  socketPath: string;
  baseId: number;
  pidFile?: string;
  timeoutS: number;
  json: boolean;
}

export const commandOptionTable: OptionTable<CommandFlags> = {
  socketPath: optionTable.socketPath,
  baseId: optionTable.baseId,
  pidFile: { ...supervisorOptionTable.pidFile, help: 'find the supervisor by the pid in this file (its --pid-file), not by --socket-path and --base-id' },
  timeoutS: { flag: 'timeout-s', type: 'integer', unit: 's', min: 1, max: 86_400, default: 60, help: 'stop waiting for the answer after this long (a reload goes on)' },
  json: { flag: 'json', type: 'boolean', default: false, help: 'print the answer as one JSON object' },
};
