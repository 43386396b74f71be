// baton as a user runs it: examples/http-server.mjs under `baton run`, its
// config rewritten before each SIGHUP to change the worker count. Every
// server the bench drives (here and in ../alternatives/) has this shape:
// start({ port, workers }) -> { restart(workers), stop() }, where restart()
// returns the epoch that will answer next and when the old one is gone.
// baton's handle also asks its supervisor's control socket, as `baton reload`
// and `baton status` do.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { supervisorAddress } from '../../dist/src/channel/address.js';
import { askSupervisor } from '../../dist/src/supervisor/client.js';
import { answering } from '../probe.mjs';
import { allGone, jsonLines, killServer, startServer, workDir } from '../processes.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Short drain and shutdown times: HTTP/1.0 answers are instant, and each scenario waits for the old epoch to exit. */
export const PARENT_SHUTDOWN_S = 2;
const TIMES = ['--drain-time-s', '1', '--parent-shutdown-time-s', String(PARENT_SHUTDOWN_S)];
/** Longer than any take-over here takes, loaded or not. */
const ASK_MS = 60_000;

export const baton = {
  name: 'baton',
  unavailable: () => undefined,

  /**
   * `flags` go to `baton run` (--surplus-sockets close, say); `socketPath` is its --socket-path (base id 0);
   * `ports`: every port it listens on (`port`, where answers are awaited, among them); `http2`: cleartext HTTP/2.
   */
  async start({ port, workers, flags = [], socketPath = `@baton-bench-${process.pid}-${port}`, ports = [port], http2 = false }) {
    const config = join(workDir(), `baton-${port}.json`);
    const listen = ports.map((p) => `127.0.0.1:${p}`);
    const writeConfig = (concurrency) => writeFileSync(config, JSON.stringify({ concurrency, listen, http2 }));
    writeConfig(workers);
    const supervisor = startServer(process.execPath, [
      join(root, 'dist/src/supervisor/cli.js'), 'run', '--log', 'json', '--socket-path', socketPath, ...TIMES, ...flags,
      '--', process.execPath, join(root, 'examples/http-server.mjs'), '--config', config,
    ]);
    // Every generation prints a line there: unread, a thousand of them would fill the pipe and block the next one.
    supervisor.stdout.resume();
    const logged = jsonLines(supervisor, supervisor.stderr);
    // The probe speaks HTTP/1.0: an HTTP/2 server is serving once its supervisor says epoch 0 took over.
    if (http2) await logged((e) => e.epoch === 0 && typeof e.tookOverMs === 'number').catch((error) => killServer(supervisor).then(() => Promise.reject(error)));
    else await answering(supervisor, port);
    // Every generation's pid, from its 'starting' entry.
    const pidOf = (epoch) => logged((e) => e.epoch === epoch && typeof e.pid === 'number').then((e) => e.pid);
    let epoch = 0;
    const address = supervisorAddress(socketPath, 0);
    return {
      supervisor,
      restart(concurrency) {
        writeConfig(concurrency);
        supervisor.kill('SIGHUP');
        const old = epoch++;
        // The supervisor's log entry: SIGHUP to the new epoch's workers accepting (tookOverMs), and each step's time (timeline).
        const tookOver = logged((e) => e.epoch === epoch && typeof e.tookOverMs === 'number');
        return {
          epoch,
          tookOver,
          takeoverMs: tookOver.then((e) => e.tookOverMs),
          oldGone: pidOf(old).then((pid) => allGone([pid], `epoch ${old} exits`)),
        };
      },
      /** `baton reload` to `concurrency` workers: resolves with the supervisor's outcome (took over or failed). */
      reload(concurrency) {
        writeConfig(concurrency);
        return askSupervisor(address, 'reload', ASK_MS);
      },
      /** `baton status --json`: the supervisor and its running generations. */
      status: () => askSupervisor(address, 'status', ASK_MS).then((reply) => reply.status),
      stop: () => killServer(supervisor),
    };
  },
};
