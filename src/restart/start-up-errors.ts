// Under `baton run`, an error that escapes the application before its
// generation takes over (a config file that does not load, serve()
// rejecting) ends the process with one 'failed' report: the supervisor logs
// one line with its message, and its stack only if `--log details` (or in
// its JSON log) asks. Node's own report (a stack trace on stderr) stays for
// a process without a supervisor, for an application that handles such
// errors itself, and for any crash after take-over.

import { isMainThread } from 'node:worker_threads';
import { ErrorCodes } from '../errors';
import { STATUS_FD_ENV, statusPipe } from './status';

const EVENTS = ['uncaughtException', 'unhandledRejection'] as const;
type Event = (typeof EVENTS)[number];

let handlers: Map<Event, (error: unknown) => void> | undefined;

/** From the moment baton is loaded, in a generation's main thread run by `baton run`. */
export function reportStartUpErrors(env: NodeJS.ProcessEnv = process.env): void {
  if (handlers || !isMainThread || !env[STATUS_FD_ENV]) return;
  handlers = new Map(EVENTS.map((event) => [event, (error: unknown) => onError(event, error)]));
  for (const [event, handler] of handlers) process.on(event, handler);
}

/** Once the generation has taken over. */
export function stopReportingStartUpErrors(): void {
  for (const [event, handler] of handlers ?? []) process.off(event, handler);
  handlers = undefined;
}

function onError(event: Event, error: unknown): void {
  // The application listens too: what it does with the error is its choice.
  if (process.listenerCount(event) > 1) return;
  stopReportingStartUpErrors(); // a second error while we exit is Node's to report
  const status = statusPipe();
  // serve() reported its own failure as it gave up, and its rejection arrives here: once is enough.
  if (!status.failed) status.reportFailure(error, ErrorCodes.APPLICATION);
  void status.close().then(() => process.exit(1));
}
