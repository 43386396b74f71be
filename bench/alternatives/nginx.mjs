// nginx answering the bench's `epoch=N` itself (no upstream), reloaded the
// way nginx is: a new config (worker_processes changed) and SIGHUP to the
// master, which starts new workers and lets the old ones finish and exit.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { answering } from '../probe.mjs';
import { allGone, childrenOf, killServer, startServer, workDir } from '../processes.mjs';
import { which } from './installed.mjs';

function configFile(port, workers, epoch) {
  const file = join(workDir(), `nginx-${port}.conf`);
  writeFileSync(
    file,
    `worker_processes ${workers};
pid ${join(workDir(), `nginx-${port}.pid`)};
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:${port} backlog=511;
    location / { default_type text/plain; return 200 "epoch=${epoch} nginx\\n"; }
  }
}
`,
  );
  return file;
}

export const nginx = {
  name: 'nginx reload',
  unavailable: () => (which('nginx') ? undefined : 'not installed'),

  async start({ port, workers }) {
    const master = await answering(startServer('nginx', ['-e', 'stderr', '-p', workDir(), '-c', configFile(port, workers, 0), '-g', 'daemon off;']), port);
    let epoch = 0;
    return {
      restart(count) {
        const old = childrenOf(master.pid);
        configFile(port, count, ++epoch);
        master.kill('SIGHUP');
        return { epoch, oldGone: allGone(old, 'the old nginx workers exit') };
      },
      stop: () => killServer(master),
    };
  },
};
