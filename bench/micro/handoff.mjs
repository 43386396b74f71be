// The full socket handoff, from the child connecting to the parent's control
// socket to the child holding every listener x worker fd: baton's child
// (one batched request, answered in records of up to 253 fds) against
// Envoy's way (one request and reply per socket). Both run in this process
// against one real ParentMachine behind a real ControlServer, the way
// test/unit/restart-machines.test.ts drives them.
//
// Timed by hand rather than by benchmark.js: the figure is connect-to-fds,
// and what follows (closing up to 1,024 received fds, the parent seeing the
// child leave) must stay outside it.

import * as native from '../../dist/src/binding.js';
import { controlAddress } from '../../dist/src/channel/address.js';
import { ControlServer } from '../../dist/src/channel/server.js';
import { planHandoff, takenSockets } from '../../dist/src/listeners/plan.js';
import { hotRestartVersion } from '../../dist/src/options.js';
import { closeAll } from '../../dist/src/channel/connection.js';
import { ChildMachine } from '../../dist/src/restart/child.js';
import { ParentMachine } from '../../dist/src/restart/parent.js';
import { printFigures } from '../report.mjs';
import { perSocketHandoff } from './per-socket-child.mjs';

const SHAPES = [
  [1, 1],
  [16, 4],
  [64, 16],
];
const VERSION = hotRestartVersion();
const uid = process.getuid();
/** Longer than the bench: no deadline of either machine may fire. */
const NEVER = 600_000;

/** L listeners x W workers: W sockets bound to each of L loopback ports (one SO_REUSEPORT group a port). */
function socketTable(listeners, workers) {
  const byPort = new Map();
  for (let l = 0; l < listeners; l++) {
    const first = native.tcpBind(4, '127.0.0.1', 0, false);
    const { port } = native.socketInfo(first);
    byPort.set(port, [first, ...Array.from({ length: workers - 1 }, () => native.tcpBind(4, '127.0.0.1', port, false))]);
  }
  return byPort;
}

/**
 * A serving parent whose hook answers as a generation's (Generation.handOut)
 * does: its inventory of held listeners, planned against the request with
 * src/listeners/plan.ts, the sockets the child takes sent (the table's fds,
 * which stay the parent's). Envoy's way names one socket a request, which our
 * protocol cannot say: for the per-socket child (`oneSocket`), a request for
 * `k` workers of one listener is planned the same way, over that listener
 * alone, and answered with socket k-1 alone: planning the whole inventory
 * for each socket would charge the baseline 64x the batched planning.
 */
function startParent(byPort, name) {
  const warnings = [];
  const mode = { oneSocket: false };
  const parent = new ParentMachine(
    { epoch: 0, hotRestartVersion: VERSION, allowedUids: [uid], handshakeTimeoutMs: NEVER, childInitTimeoutMs: NEVER, drainMs: NEVER, shutdownMs: NEVER },
    {
      async sockets({ listeners, workers, surplus }) {
        const ports = mode.oneSocket ? listeners.map(({ port }) => port) : [...byPort.keys()];
        const held = ports.map((port) => ({ protocol: 'tcp', host: '127.0.0.1', port, ipv6Only: false, sockets: byPort.get(port).length }));
        const taken = takenSockets(planHandoff(held, listeners, workers, surplus)).filter(({ index }) => !mode.oneSocket || index === workers - 1);
        return {
          refs: taken.map(({ listener, index }) => ({ listener, index })),
          fds: taken.map(({ held: h, index }) => byPort.get(held[h].port)[index]),
          // Envoy's reply is the socket alone; ours also carries the inventory the child plans from.
          held: mode.oneSocket ? [] : held,
        };
      },
      stopAccepting() {},
      resumeAccepting() {},
      drain() {},
      retired() {},
      terminate: async () => {},
      warn: (message) => warnings.push(message),
    },
  );
  const address = controlAddress(`@baton-bench-${process.pid}-${name}`, 0, 0);
  const server = ControlServer.listen(address, 0o600);
  server.on('connection', (channel, peer) => parent.accept(channel, peer));
  parent.ready();
  return { parent, address, warnings, mode, close: () => server.close() };
}

/** baton's child: connect, hello, one getSockets for everything. */
async function batchedHandoff(address, listeners, workers) {
  const child = new ChildMachine({ epoch: 1, hotRestartVersion: VERSION, allowedUids: [uid], handshakeTimeoutMs: NEVER, requestTimeoutMs: NEVER, parentShutdownMs: NEVER });
  await child.connect(address);
  const { fds } = await child.takeSockets({ listeners, workers: workers.length, surplus: 'drain' });
  return { fds: [...fds.values()].flatMap((byIndex) => [...byIndex.values()]), leave: () => child.detach() };
}

const VARIANTS = { batched: batchedHandoff, 'per-socket': perSocketHandoff };

/** The parent is serving again once it has seen the child go. */
function serving(parent) {
  return new Promise((resolve) => {
    if (parent.is('serving')) return resolve();
    const onTransition = () => parent.is('serving') && (parent.off('transition', onTransition), resolve());
    parent.on('transition', onTransition);
  });
}

const median = (values) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)];

/** Median ms of as many handoffs as fit in `budgetMs` (at least 5, after 2 unmeasured). */
async function timeHandoffs(handoff, parent, address, listeners, workers, budgetMs) {
  const expected = listeners.length * workers.length;
  const times = [];
  const until = performance.now() + budgetMs;
  for (let i = -2; i < 5 || (performance.now() < until && i < 1000); i++) {
    const startedAt = performance.now();
    const { fds, leave } = await handoff(address, listeners, workers);
    const ms = performance.now() - startedAt;
    leave();
    closeAll(fds);
    if (fds.length !== expected) throw new Error(`handoff gave ${fds.length} fds, expected ${expected}`);
    if (i >= 0) times.push(ms);
    await serving(parent);
  }
  return { ms: median(times), runs: times.length };
}

export async function handoff(results, { budgetMs }) {
  const since = results.entries.length;
  for (const [listenerCount, workerCount] of SHAPES) {
    const shape = `${listenerCount}x${workerCount}`;
    const byPort = socketTable(listenerCount, workerCount);
    const { parent, address, warnings, mode, close } = startParent(byPort, `handoff-${shape}`);
    try {
      const listeners = [...byPort.keys()].map((port) => ({ protocol: 'tcp', host: '127.0.0.1', port, ipv6Only: false }));
      const workers = Array.from({ length: workerCount }, (_, i) => i);
      const measured = {};
      for (const [variant, run] of Object.entries(VARIANTS)) {
        mode.oneSocket = variant === 'per-socket';
        measured[variant] = await timeHandoffs(run, parent, address, listeners, workers, budgetMs);
      }
      if (warnings.length > 0) throw new Error(`the parent warned: ${warnings.join('; ')}`);
      const batched = measured.batched.ms;
      const perSocket = measured['per-socket'].ms;
      const target =
        shape === '64x16' ? { text: '1,024 sockets < 5 ms and >= 10x faster than per-socket', met: batched < 5 && perSocket / batched >= 10 } : undefined;
      results.add(`handoff.${shape}.batched.ms`, batched, 'ms', { baseline: `handoff.${shape}.per-socket.ms`, target });
      results.add(`handoff.${shape}.per-socket.ms`, perSocket, 'ms');
    } finally {
      await parent.terminate('bench over');
      close();
      for (const fds of byPort.values()) closeAll(fds);
    }
  }
  printFigures('full handoff, child connect to all fds received (median ms)', results, since);
}
