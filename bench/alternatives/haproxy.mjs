// HAProxy answering the bench's `epoch=N` itself (no backend), reloaded
// seamlessly: a new process started with the new config (nbthread changed)
// takes the listening sockets from the old one over its stats socket (-x,
// `expose-fd listeners`), then tells it to finish and exit (-sf).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { answering } from '../probe.mjs';
import { killServer, startServer, workDir } from '../processes.mjs';
import { which } from './installed.mjs';

function configFile(port, threads, epoch, statsSocket) {
  const file = join(workDir(), `haproxy-${port}.cfg`);
  writeFileSync(
    file,
    `global
  nbthread ${threads}
  stats socket ${statsSocket} mode 600 expose-fd listeners level admin
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend bench
  bind 127.0.0.1:${port} backlog 511
  http-request return status 200 content-type text/plain string "epoch=${epoch} haproxy"
`,
  );
  return file;
}

export const haproxy = {
  name: 'HAProxy seamless reload',
  unavailable: () => (which('haproxy') ? undefined : 'not installed'),

  async start({ port, workers }) {
    const statsSocket = join(workDir(), `haproxy-${port}.sock`);
    // -db: in the foreground, so that it is our child and its exit is seen.
    let current = await answering(startServer('haproxy', ['-db', '-f', configFile(port, workers, 0, statsSocket)]), port);
    const running = new Set([current]);
    let epoch = 0;
    return {
      restart(threads) {
        const old = current;
        const config = configFile(port, threads, ++epoch, statsSocket);
        current = startServer('haproxy', ['-db', '-f', config, '-x', statsSocket, '-sf', String(old.pid)]);
        running.add(current);
        return { epoch, oldGone: old.exited };
      },
      stop: () => Promise.all([...running].map(killServer)),
    };
  },
};
