// Two restarts of the same Node `cluster` server (cluster-server.mjs): the
// rolling worker restart cluster users do on SIGHUP, and the cold restart
// everyone can do (stop the process, start it again).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonLines, killServer, startServer, workDir } from '../processes.mjs';

const script = fileURLToPath(new URL('cluster-server.mjs', import.meta.url));

/** One primary process; resolves once every worker of `epoch` listens. */
async function startPrimary(config, epoch) {
  const primary = startServer(process.execPath, [script, '--config', config, '--epoch', String(epoch)]);
  const reported = jsonLines(primary, primary.stdout);
  try {
    await reported((e) => e.event === 'serving' && e.epoch === epoch);
  } catch (error) {
    await killServer(primary);
    throw error;
  }
  return { primary, reported };
}

function configFile(port, workers) {
  const config = join(workDir(), `cluster-${port}.json`);
  writeFileSync(config, JSON.stringify({ concurrency: workers, listen: [`127.0.0.1:${port}`] }));
  return config;
}

export const clusterRolling = {
  name: 'node cluster, rolling restart',
  unavailable: () => undefined,

  async start({ port, workers }) {
    const { primary, reported } = await startPrimary(configFile(port, workers), 0);
    let epoch = 0;
    return {
      restart(count) {
        configFile(port, count);
        primary.kill('SIGHUP');
        const old = epoch++;
        return { epoch, oldGone: reported((e) => e.event === 'retired' && e.epoch === old) };
      },
      stop: () => killServer(primary),
    };
  },
};

export const coldRestart = {
  name: 'cold restart (stop, start)',
  unavailable: () => undefined,

  async start({ port, workers }) {
    let { primary } = await startPrimary(configFile(port, workers), 0);
    let epoch = 0;
    let starting = Promise.resolve();
    return {
      restart(count) {
        const old = primary;
        old.kill('SIGTERM');
        const next = ++epoch;
        // Started in the background: the bench measures when it answers, as for every server.
        starting = old.exited.then(() => startPrimary(configFile(port, count), next)).then((started) => void (primary = started.primary));
        starting.catch(() => {}); // the probe reports an epoch that never answers
        return { epoch, oldGone: old.exited };
      },
      async stop() {
        await starting.catch(() => {});
        await killServer(primary);
      },
    };
  },
};
