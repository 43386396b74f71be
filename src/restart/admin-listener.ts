// The admin listener of a generation: GET /metrics, and /ready and /live for
// an orchestrator's probes, served from the main thread on the socket handed
// over like any other (one socket, index 0), so no scrape or probe is lost at
// a restart. A main-thread server like any other, except once its generation
// stopped accepting: a connection opened during the hand-over has its first
// request answered by whoever now accepts on the socket, a kept-alive one
// from before is told to ask again (503), except /live: this process still
// runs.

import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Follower } from './follower';
import { MainThreadServer } from './main-thread-server';

/** How long a request passed on to the next generation may wait for it (it opens once it has our numbers). */
const PASS_ON_TIMEOUT_MS = 3000;
/** Marks a request a draining generation passed on (its epoch). */
const PASSED_ON = 'x-baton-passed-on';

export class AdminListener implements Follower {
  private readonly server: MainThreadServer;
  private readonly address: { host: string; port: number };
  /** Connections that have had a request: a later one on them, once stopped, gets 503. */
  private readonly used = new WeakSet<Socket>();
  private stopped = false;
  /** Stopped, but still accepting on our admin socket (it is ours alone). */
  private kept = false;

  constructor(
    sockets: ListenerSet,
    private readonly handler: http.RequestListener,
    private readonly epoch: number,
    /** An error of the admin server (accepting, listening) is reported, never thrown at the process. */
    warn: (message: string) => void,
  ) {
    const admin = sockets.listeners.find((l) => l.role === 'admin')!;
    this.address = { host: admin.address.host, port: admin.address.port };
    const target = http.createServer((req, res) => this.answer(req, res));
    target.on('error', (error) => warn(`admin listener ${admin.name}: ${error.message}`));
    this.server = new MainThreadServer(sockets, target, { listener: admin.name }, (message) => warn(`admin listener ${message}`));
  }

  /** Accepts on the admin socket. */
  resumeAccepting(): void {
    this.stopped = false;
    this.server.resumeAccepting();
  }

  /** Stops accepting (requests in flight finish), except on a socket kept (one only we hold, as we hand back). */
  stopAccepting(keep: readonly SocketEntry[]): void {
    this.stopped = true;
    // Kept, the socket is still ours alone: passing a request on to it would reach us again.
    this.kept = keep.some((e) => e.listener.role === 'admin');
    this.server.stopAccepting(keep);
  }

  retire(entry: SocketEntry): void {
    this.server.retire(entry);
  }

  terminate(): void {
    this.server.terminate();
  }

  /**
   * Once our child serves, a scrape that reaches us on a kept-alive
   * connection gets 503 and the connection closes: answering it with our
   * view, which lacks the child's counts, would show counters going back.
   * The first request of a connection we accepted as we stopped is passed
   * on to the socket, where only the next generation accepts now: a
   * scraper that opened it during the hand-over sees no failure.
   *
   * /ready is 200 while we accept, and a generation that is starting is
   * never reached: epoch 0's socket listens from its take-over (a probe is
   * refused before), a later epoch accepts here once it took over and has
   * its parent's numbers (a probe waits in the socket's queue for that one
   * stats pull, or reaches the parent as it stops and is passed on). So a
   * probe reads 200 throughout a hot restart, and 503 from a generation
   * that drains or shuts down, on a kept-alive connection or when no other
   * answers in its place. /live is answered here always: the process runs,
   * draining or not.
   */
  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const first = !this.used.has(req.socket);
    this.used.add(req.socket);
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/live') return this.probe(req, res, 200, `generation ${this.epoch} live\n`);
    if (!this.stopped) return path === '/ready' ? this.probe(req, res, 200, `generation ${this.epoch} ready\n`) : void this.handler(req, res);
    // A request we passed on comes back to us only if nobody else accepts: it is not passed on again.
    if (first && !this.kept && req.headers[PASSED_ON] === undefined) return this.passOn(req, res);
    this.askAgain(res, path === '/ready' ? 'is draining: not ready; the next one serves, ask again' : 'is draining: the next one serves the metrics, ask again');
  }

  /** A probe's answer; once stopped, it closes the connection so the prober's next one reaches whoever accepts. */
  private probe(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.reply(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    this.reply(res, status, body);
  }

  private passOn(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = http.request(
      { ...this.address, method: req.method, path: req.url, headers: { ...req.headers, connection: 'close', [PASSED_ON]: String(this.epoch) }, agent: false, timeout: PASS_ON_TIMEOUT_MS },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, connection: 'close' });
        answer.pipe(res);
      },
    );
    upstream.on('timeout', () => upstream.destroy());
    upstream.on('error', () => (res.headersSent ? res.destroy() : this.askAgain(res, 'is draining and the next one did not answer, ask again')));
    req.pipe(upstream);
  }

  private askAgain(res: http.ServerResponse, why: string): void {
    this.reply(res, 503, `generation ${this.epoch} ${why}\n`, { 'retry-after': '0' });
  }

  /** Plain text (a HEAD request's body is dropped by node:http); once stopped, with Connection: close. */
  private reply(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
    const close = this.stopped ? { connection: 'close' } : {};
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...close, ...headers });
    res.end(body);
  }
}
