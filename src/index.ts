// baton: hot restart for Node.js servers on Linux. The public API, and
// nothing else: what an application calls, and the types it names in its
// code. test/unit/api.test.ts pins this list (a change to it is a decision),
// checks that every export is documented, and that README's API section
// names exactly these.

// First: when baton's code began to load (the supervisor logs every step of a generation's start-up).
import { mark } from './timeline';
// Then: loading the addon refuses any platform but Linux, before anything else runs.
import './binding';
// Then, under `baton run`: an error before take-over is one line in the supervisor's log, not a stack trace.
import { reportStartUpErrors } from './restart/start-up-errors';
reportStartUpErrors();

// Serving: the whole sequence in one call.
export { serve, type ServeOptions, type Served } from './serve';

// A generation, step by step.
export { Generation, type GenerationEvents, type ListenOptions, type StartOptions } from './restart/generation';
export type { Transition } from './restart/machine';

// Followers: whatever serves a generation's sockets.
export type { Follower } from './restart/follower';
export type { MainThreadServeOptions } from './restart/main-thread-server';
export { serveOnMainThread } from './restart/serve-on-main-thread';

// Worker threads.
export { workerContext, type WorkerContext, type WorkerContextEvents } from './workers/worker';
export { WorkerPool, type WorkerPoolEvents, type WorkerPoolOptions } from './workers/pool';

// Drain.
export { stopListening, type DrainAdapter, type DrainAdapterOptions } from './drain/adapter';
export type { DrainController, DrainControllerEvents, DrainProgress } from './drain/controller';
export { drainHttp } from './drain/http';
export { drainHttp2 } from './drain/http2';
export { drainNet, type NetDrainAdapter } from './drain/net';
export { drainDgram } from './drain/dgram';

// Stats.
export type { StatsRegistry } from './stats/registry';
export type { ThreadStats } from './stats/thread-stats';
export type { Counter, Gauge, Histogram } from './stats/metrics';
export type { GaugeOptions, HistogramOptions, MetricOptions } from './stats/definition';
export { metricsHandler, type MetricsHandlerOptions } from './stats/admin';

// Errors.
export { BatonError, ErrorCodes, type ErrorCode } from './errors';

// Listeners and options.
export type { Listener, ListenerSpec } from './listeners/spec';
export type { SocketEntry } from './listeners/listener-set';
export type { HotRestartOptions } from './options';

mark('imported');
