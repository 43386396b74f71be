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
export { Generation, type GenerationEvents, type ListenOptions, type StartOptions } from './restart/generation';
export type { Follower } from './restart/follower';
export { MainThreadServer, serveOnMainThread, type MainThreadServeOptions } from './restart/main-thread-server';
export type { Transition } from './restart/machine';
export type { ChildState } from './restart/child';
export type { ParentState } from './restart/parent';
export { WorkerPool, type WorkerPoolOptions } from './workers/pool';
export { workerContext, WorkerContext } from './workers/worker';
export { ListenerSet, type SocketEntry } from './listeners/listener-set';
export { parseListen, type Listener, type ListenerSpec } from './listeners/spec';
export {
  defaultOptions,
  hotRestartVersion,
  optionsFromEnv,
  optionsToEnv,
  resolveOptions,
  type HotRestartOptions,
} from './options';
export { PROTOCOL_VERSION } from './protocol/messages';
export { StatsRegistry, type StatsRegistryOptions } from './stats/registry';
export { ThreadStats, workerStats, type StatsHandle } from './stats/thread-stats';
export { Counter, CounterSeries, Gauge, GaugeSeries, Histogram, HistogramSeries } from './stats/metrics';
export {
  DEFAULT_BUCKETS,
  LIMITS as STATS_LIMITS,
  type GaugeOptions,
  type HistogramOptions,
  type ImportMode,
  type LabelValues,
  type MetricDefinition,
  type MetricOptions,
  type MetricType,
} from './stats/definition';
export type { MetricFamily, SeriesValues } from './stats/families';
export type { SegmentCapacity as StatsCapacity } from './stats/segment';
export {
  MAX_SNAPSHOT_SERIES,
  joinSnapshots,
  splitSnapshot,
  type SnapshotMetric,
  type StatsSnapshot,
} from './stats/snapshot';
export { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './stats/exposition';
export type { PromClientRegistry } from './stats/prom-client';
export { metricsHandler, type MetricsHandlerOptions } from './stats/admin';
export { ENGINE_METRICS, EngineMetrics, type SocketCounts } from './stats/engine';
export {
  DrainController,
  type Closeable,
  type DrainControllerEvents,
  type DrainControllerOptions,
  type DrainProgress,
  type DrainStrategy,
} from './drain/controller';
export { stopListening, type DrainAdapter, type DrainAdapterOptions } from './drain/adapter';
export { drainHttp } from './drain/http';
export { drainHttp2 } from './drain/http2';
export { drainNet, type NetDrainAdapter } from './drain/net';
export { drainDgram } from './drain/dgram';
