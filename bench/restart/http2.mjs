// HTTP/2 clients through hot restarts: Node's own http2 client (16 sessions
// of 4 streams each, a new session for one that gets GOAWAY) against baton
// serving cleartext HTTP/2, through 4 restarts that change the worker count;
// every stream is counted, and a failed one is a stream the client sent and
// the server never answered (refused by a GOAWAY, reset, or cut). Streams
// Node's client refused itself before sending them (queued as a GOAWAY came:
// tools/load's notSent) are sent again on a new session and reported apart.
// nginx and
// HAProxy are not measured here (their h2c set-up is not written yet).

import { freePort } from '../../dist/test/support/wait.js';
import { startLoadProcess } from '../processes.mjs';
import { formatNumber, printTable, targetText } from '../report.mjs';
import { baton } from '../servers/baton.mjs';

const SESSIONS = 16;
const STREAMS = 4;
const COUNTS = [4, 2, 4, 1, 3];

export async function http2Restarts(results) {
  const port = await freePort();
  const handle = await baton.start({ port, workers: COUNTS[0], http2: true });
  let run;
  try {
    run = startLoadProcess({ targets: [{ host: '127.0.0.1', port }], protocol: 'h2', concurrency: SESSIONS, streams: STREAMS, durationMs: 120_000 });
    for (const workers of COUNTS.slice(1)) {
      const restart = handle.restart(workers);
      await Promise.all([restart.takeoverMs, restart.oldGone]);
    }
    run.stop();
    const counted = await run.done;
    results.add('restart.http2.attempted', counted.attempted, 'streams');
    results.add('restart.http2.not-sent-streams', counted.notSent, 'streams');
    results.add('restart.http2.failed-streams', counted.lost, 'streams', { target: { text: 'zero failed streams', met: counted.lost === 0 } });
    const target = results.entries.at(-1).target;
    const failedBy = Object.entries(counted.errors).map(([reason, n]) => `${reason} ${n}`);
    printTable(
      `HTTP/2 through ${COUNTS.length - 1} restarts (${COUNTS.join(' -> ')} workers): Node's http2 client, ${SESSIONS} sessions x ${STREAMS} streams, ` +
        'a new session for one that gets GOAWAY; every stream counted.',
      ['server', 'streams', 'answered', 'failed', 'not sent, sent again', 'failed by / target'],
      [['baton (cleartext h2)', ...[counted.attempted, counted.answered, counted.lost, counted.notSent].map(formatNumber), [...failedBy, targetText(target)].join('; ')]],
    );
  } finally {
    run?.stop();
    await handle.stop();
  }
}
