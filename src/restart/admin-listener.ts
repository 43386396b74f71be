// The admin listener of a generation: GET /metrics, served from the main
// thread on the socket handed over like any other (one socket, index 0), so
// no scrape is lost at a restart. A main-thread server like any other, except
// once its generation stopped accepting: a connection opened during the
// hand-over has its first request answered by whoever now accepts on the
// socket, a kept-alive one from before is told to ask again (503).

import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerSet, SocketEntry } from '../listeners/listener-set';
import type { Follower } from './follower';
import { MainThreadServer } from './main-thread-server';

/** How long a request passed on to the next generation may wait for it (it opens once it has our numbers). */
const PASS_ON_TIMEOUT_MS = 3000;

export class AdminListener implements Follower {
  private readonly server: MainThreadServer;
  private readonly address: { host: string; port: number };
  /** Connections that have had a request: a later one on them, once stopped, gets 503. */
  private readonly used = new WeakSet<Socket>();
  private stopped = false;

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

  /** Stops accepting (requests in flight finish), except on a listener kept by a child that dropped it. */
  stopAccepting(keep: readonly SocketEntry[]): void {
    this.stopped = true;
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
   */
  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const first = !this.used.has(req.socket);
    this.used.add(req.socket);
    if (!this.stopped) return void this.handler(req, res);
    if (first) return this.passOn(req, res);
    this.askAgain(res);
  }

  private passOn(req: http.IncomingMessage, res: http.ServerResponse): void {
    const upstream = http.request(
      { ...this.address, method: req.method, path: req.url, headers: { ...req.headers, connection: 'close' }, agent: false, timeout: PASS_ON_TIMEOUT_MS },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, connection: 'close' });
        answer.pipe(res);
      },
    );
    upstream.on('timeout', () => upstream.destroy());
    upstream.on('error', () => (res.headersSent ? res.destroy() : this.askAgain(res)));
    req.pipe(upstream);
  }

  private askAgain(res: http.ServerResponse): void {
    const body = `generation ${this.epoch} is draining: the next one serves the metrics, ask again\n`;
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close', 'retry-after': '0' });
    res.end(body);
  }
}
