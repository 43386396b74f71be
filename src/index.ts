// baton: hot restart for Node.js servers on Linux. The public API, and nothing else.

import { BatonError, ErrorCodes } from './errors';

if (process.platform !== 'linux') {
  throw new BatonError(
    ErrorCodes.UNSUPPORTED_PLATFORM,
    `baton runs on Linux only (SO_REUSEPORT groups, SCM_RIGHTS, reuseport BPF); this is ${process.platform}`,
  );
}

export { BatonError, ErrorCodes, type ErrorCode, type SystemError } from './errors';
export { serve, type ServeOptions, type Served } from './serve';
export { Generation, type GenerationEvents, type StartOptions } from './restart/generation';
export type { Transition } from './restart/machine';
export type { ChildState } from './restart/child';
export type { ParentState } from './restart/parent';
export { WorkerPool, type WorkerPoolOptions } from './workers/pool';
export { workerContext, WorkerContext } from './workers/worker';
export {
  ListenerSet,
  parseListen,
  type Listener,
  type ListenerSpec,
  type SocketEntry,
} from './listeners/listener-set';
export {
  defaultOptions,
  hotRestartVersion,
  optionsFromEnv,
  optionsToEnv,
  resolveOptions,
  type HotRestartOptions,
} from './options';
export { PROTOCOL_VERSION } from './protocol/messages';
