// PM2 in cluster mode running the cluster alternative's workers
// (cluster-server.mjs), restarted the PM2 way: `pm2 reload` replaces the
// workers one by one (each new one listening before the old one gets SIGINT),
// then `pm2 scale` sets the new count, which a reload cannot change. PM2 runs
// as pm2-runtime (its daemon in the foreground, so that it is our child and
// killed with its group) with a PM2_HOME of its own: the bench never touches
// a PM2 the machine already runs.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { answering } from '../probe.mjs';
import { allGone, childrenOf, killServer, startServer, workDir } from '../processes.mjs';
import { which } from './installed.mjs';

const script = fileURLToPath(new URL('cluster-server.mjs', import.meta.url));
const NAME = 'baton-bench';
/** Longer than a reload of 4 workers takes on a loaded machine. */
const COMMAND_MS = 60_000;

/** PM2's version from its package.json: every `pm2` command, `pm2 --version` too, starts a daemon if none runs. */
export function pm2Version() {
  const bin = which('pm2-runtime');
  return bin && JSON.parse(readFileSync(join(dirname(realpathSync(bin)), '../package.json'), 'utf8')).version;
}

/** A daemon a pm2 command started after all (the runtime, in the foreground, is killed with its group). */
function killDaemon(home) {
  try {
    process.kill(Number(readFileSync(join(home, 'pm2.pid'), 'utf8')), 'SIGKILL');
  } catch {
    // No pid file, or that process is gone.
  }
}

export const pm2 = {
  name: 'PM2 reload (cluster mode)',
  unavailable: () => (which('pm2') && which('pm2-runtime') ? undefined : 'not installed'),

  async start({ port, workers }) {
    const home = join(workDir(), `pm2-${port}`);
    mkdirSync(home, { recursive: true });
    const env = (epoch) => ({ ...process.env, PM2_HOME: home, EPOCH: String(epoch), HOST: '127.0.0.1', PORT: String(port) });
    const runtime = await answering(startServer('pm2-runtime', ['start', script, '--name', NAME, '-i', String(workers)], { env: env(0) }), port);
    runtime.stdout.resume(); // PM2's own messages: unread, they would fill the pipe
    // A pm2 command that finds no daemon starts one (detached, in PM2_HOME/pm2.pid): commands run only
    // while the runtime lives, and stop() ends those still running before the runtime.
    const commands = new Set();
    const pm2Command = async (epoch, ...args) => {
      if (runtime.exitCode !== null || runtime.signalCode !== null) throw new Error(`pm2-runtime exited: ${runtime.stderrTail() || 'no stderr'}`);
      const running = promisify(execFile)('pm2', args, { env: env(epoch), timeout: COMMAND_MS });
      commands.add(running.child);
      await running.finally(() => commands.delete(running.child));
    };
    let epoch = 0;
    let count = workers;
    return {
      restart(next) {
        const old = childrenOf(runtime.pid);
        const scale = next === count ? [] : ['scale', NAME, String(next)];
        count = next;
        epoch++;
        // --update-env: the new workers answer with the new epoch.
        const done = pm2Command(epoch, 'reload', NAME, '--update-env').then(() => scale.length > 0 && pm2Command(epoch, ...scale));
        return { epoch, oldGone: done.then(() => allGone(old, 'the old PM2 workers exit')) };
      },
      async stop() {
        for (const command of commands) command.kill('SIGKILL');
        await killServer(runtime);
        killDaemon(home);
      },
    };
  },
};
