// Steady-state accept throughput with as many workers as cores: baton's
// workers, each accepting on its own SO_REUSEPORT socket (the kernel spreads
// connections), against Node's cluster round-robin (the primary accepts
// every connection and passes it to a worker over IPC). Same load for both.

import { availableParallelism } from 'node:os';
import { clusterRolling } from './alternatives/cluster.mjs';
import { freePort } from '../dist/test/support/wait.js';
import { runLoad } from './processes.mjs';
import { printFigures } from './report.mjs';
import { baton } from './servers/baton.mjs';

const CONCURRENCY = 64;
const SERVERS = { baton, cluster: clusterRolling };

export async function throughput(results, { durationMs }) {
  const since = results.entries.length;
  const workers = availableParallelism();
  for (const [key, server] of Object.entries(SERVERS)) {
    const port = await freePort();
    const handle = await server.start({ port, workers });
    try {
      const measured = await runLoad({ targets: [{ host: '127.0.0.1', port }], concurrency: CONCURRENCY, durationMs });
      const compared = (metric) => (key === 'baton' ? { baseline: `throughput.cluster.${metric}` } : {});
      results.add(`throughput.${key}.connections`, measured.connectionsPerSecond, 'conn/s', compared('connections'));
      results.add(`throughput.${key}.p99.ms`, measured.latencyMs.p99, 'ms', compared('p99.ms'));
      results.add(`throughput.${key}.lost`, measured.lost, 'connections', compared('lost'));
    } finally {
      await handle.stop();
    }
  }
  printFigures(`steady-state accept throughput, ${workers} workers, ${CONCURRENCY} concurrent HTTP/1.0 connections`, results, since);
}
