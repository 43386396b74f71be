// The one connection counter behind every "zero connections lost" claim: it
// opens HTTP/1.0 connections to loopback targets and counts each one exactly
// once, as answered (status 200 and the expected body) or lost (with why).
// Over UDP each exchange is one request datagram from a socket of its own (a
// new flow, as a connection is) and counts as answered when the reply does.
// With 'keepalive' each loop is one HTTP/1.1 client that keeps its connection
// between requests, and what is counted is requests: one written and not
// answered (reset, closed, timed out) is lost, while a connection the server
// closes gracefully (Connection: close, or while idle) is only reopened.
// A loss the counter cannot see would make every such claim worthless, so a
// connection only counts as answered once the server has closed it after a
// complete, well-formed response. Over HTTP/2 ('h2', cleartext) each stream
// counts, on `concurrency` sessions of `streams` streams each; a session that
// gets GOAWAY takes no new stream, and a new session is opened for the next.

import { fork } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { createSocket } from 'node:dgram';
import * as http2 from 'node:http2';
import { BlockList, connect, isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { invalidArgument } from '../../src/errors';

export interface LoadTarget {
  host: string;
  port: number;
}

export interface LoadOptions {
  /**
   * 'tcp' (HTTP/1.0, default), 'udp' (a datagram `GET <path>`, answered by one
   * datagram), 'keepalive' (HTTP/1.1 requests on reused connections; attempts
   * are requests, and responses must carry Content-Length) or 'h2' (HTTP/2 streams).
   */
  protocol?: Protocol;
  /** Connections go round-robin over the targets; loopback only. */
  targets: LoadTarget[];
  /** Parallel connection loops (1..1024): never more sockets in flight. With 'h2', sessions. */
  concurrency: number;
  /** With 'h2': streams in flight on each session (1..100). Default 1. */
  streams?: number;
  /** Stop starting new connections after this (1..600000). */
  durationMs: number;
  /** Optional cap on attempts. */
  maxConnections?: number;
  /** Per connection, connect to full answer; past it the connection is lost as 'timeout'. Default 5000. */
  timeoutMs?: number;
  /** Answered only if the body starts with it. Default 'epoch='. */
  expectBodyPrefix?: string;
  /** Default '/'. */
  path?: string;
  /** Stops early, like stop(). */
  signal?: AbortSignal;
  /** Each loop's pause after an attempt before the next, uniform in [min, max] ms: a client's think time. Default none. */
  thinkMs?: ThinkTime;
}


export interface ThinkTime {
  min: number;
  max: number;
}

export type Protocol = 'tcp' | 'udp' | 'keepalive' | 'h2';
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'keepalive', 'h2'];

export interface LoadResult {
  /** attempted === answered + lost once finished; before, the difference is in flight. */
  attempted: number;
  /** Over HTTP/2: streams refused by the client before they left it (see NOT_SENT), sent again, not attempted. */
  notSent: number;
  answered: number;
  lost: number;
  /** Connections (UDP: sockets; h2: sessions) opened: as many as attempts but with 'keepalive' and 'h2'. */
  connections: number;
  /** Lost connections by reason: an error code ('ECONNRESET', 'ECONNREFUSED'...; for a stream
   * reset, 'ERR_HTTP2_STREAM_ERROR' and its RST_STREAM code: 'ERR_HTTP2_STREAM_ERROR/7' is refused),
   * 'timeout', 'bad-status', 'bad-body', 'closed-early' or, with 'keepalive', 'unframed' (no Content-Length). */
  errors: Record<string, number>;
  /** Answered connections by the first two whitespace-separated tokens of the body's first line. */
  byResponder: Record<string, number>;
  /** When each responder (same keys as byResponder) last answered, Unix ms (Date.now()): when an old generation stopped serving. */
  lastAnswerAt: Record<string, number>;
  /** When each lost exchange began, Unix ms, the first LOST_KEPT of them: to find them in a log. */
  lostStartedAt: number[];
  /** Connect-to-answer of answered connections. */
  latencyMs: { p50: number; p99: number; max: number; count: number };
  durationMs: number;
  connectionsPerSecond: number;
}

export interface LoadRun {
  snapshot(): LoadResult;
  /** Starts no new connection; those in flight finish (each within timeoutMs) before done resolves. */
  stop(): void;
  done: Promise<LoadResult>;
}

/** What the load process (cli.ts) posts to its parent. */
export interface LoadProcessMessage {
  type: 'snapshot' | 'result';
  result: LoadResult;
}

const LIMITS = {
  concurrency: 1024,
  streams: 100,
  durationMs: 10 * 60_000,
  timeoutMs: 10 * 60_000,
  expectBodyPrefix: 1024,
  path: 8192,
  thinkMs: 60_000,
};
const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_BODY_PREFIX = 'epoch=';
/** Bytes of a response kept for parsing; the rest is only counted, so a big body cannot exhaust memory. */
const KEPT_RESPONSE_BYTES = 64 * 1024;
const RESPONDER_BYTES = 256;
const LOST_KEPT = 100;

interface Settings {
  protocol: Protocol;
  targets: LoadTarget[];
  concurrency: number;
  streams: number;
  durationMs: number;
  /** Infinity when uncapped. */
  maxConnections: number;
  timeoutMs: number;
  expectBodyPrefix: string;
  path: string;
  signal?: AbortSignal;
  thinkMs?: ThinkTime;
}

// ---------------------------------------------------------------------------
// Validation

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6'); // also matches ::ffff:127.x.y.z

/** Throws unless host is in 127.0.0.0/8, ::1 or 'localhost': load never leaves this machine. */
export function assertLoopback(host: string): void {
  if (typeof host === 'string' && isLoopback(host)) return;
  throw invalidArgument(
    `load target host ${inspect(host)} is not loopback (127.0.0.0/8, ::1 or localhost); baton only loads this machine`,
  );
}

function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  throw invalidArgument(`${name} must be an integer in ${min}..${max}, got ${inspect(value)}`);
}

function validTarget(target: unknown, index: number): LoadTarget {
  if (typeof target !== 'object' || target === null) {
    throw invalidArgument(`targets[${index}] must be { host, port }, got ${inspect(target)}`);
  }
  const { host, port } = target as Partial<LoadTarget>;
  assertLoopback(host as string);
  return { host: host as string, port: integerIn(`targets[${index}].port`, port, 1, 65535) };
}

function validPath(path: unknown): string {
  // Visible ASCII only: the path goes verbatim into the request line.
  if (typeof path === 'string' && path.length <= LIMITS.path && /^\/[\x21-\x7e]*$/.test(path)) return path;
  throw invalidArgument(
    `path must start with '/' and hold only visible ASCII (at most ${LIMITS.path} characters), got ${inspect(path)}`,
  );
}

function validBodyPrefix(prefix: unknown): string {
  if (typeof prefix === 'string' && prefix.length <= LIMITS.expectBodyPrefix) return prefix;
  throw invalidArgument(
    `expectBodyPrefix must be a string of at most ${LIMITS.expectBodyPrefix} characters, got ${inspect(prefix)}`,
  );
}

function validSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw invalidArgument(`signal must be an AbortSignal, got ${inspect(signal)}`);
}

function validThinkTime(think: unknown): ThinkTime | undefined {
  if (think === undefined) return undefined;
  const { min, max } = (think ?? {}) as Partial<ThinkTime>;
  const valid = { min: integerIn('thinkMs.min', min, 0, LIMITS.thinkMs), max: integerIn('thinkMs.max', max, 0, LIMITS.thinkMs) };
  if (valid.min > valid.max) throw invalidArgument(`thinkMs.min must not exceed thinkMs.max, got ${inspect(think)}`);
  return valid;
}

function validateOptions(options: LoadOptions): Settings {
  if (typeof options !== 'object' || options === null) throw invalidArgument('load options must be an object');
  const { targets } = options;
  if (!Array.isArray(targets) || targets.length === 0) {
    throw invalidArgument(`targets must be a non-empty array of { host, port }, got ${inspect(targets)}`);
  }
  if (options.protocol !== undefined && !PROTOCOLS.includes(options.protocol)) {
    throw invalidArgument(`protocol must be one of ${PROTOCOLS.join(', ')}, got ${inspect(options.protocol)}`);
  }
  return {
    protocol: options.protocol ?? 'tcp',
    targets: targets.map(validTarget),
    concurrency: integerIn('concurrency', options.concurrency, 1, LIMITS.concurrency),
    streams: integerIn('streams', options.streams ?? 1, 1, LIMITS.streams),
    durationMs: integerIn('durationMs', options.durationMs, 1, LIMITS.durationMs),
    maxConnections:
      options.maxConnections === undefined
        ? Infinity
        : integerIn('maxConnections', options.maxConnections, 1, Number.MAX_SAFE_INTEGER),
    timeoutMs: integerIn('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, LIMITS.timeoutMs),
    expectBodyPrefix: validBodyPrefix(options.expectBodyPrefix ?? DEFAULT_BODY_PREFIX),
    path: validPath(options.path ?? '/'),
    signal: validSignal(options.signal),
    thinkMs: validThinkTime(options.thinkMs),
  };
}

// ---------------------------------------------------------------------------
// Latencies

/**
 * Log-scale histogram of milliseconds: buckets 1% wide from 1 µs up to 10
 * minutes, so a percentile is within 0.5% of the exact sample while memory
 * stays constant however long the run.
 */
export class LatencyHistogram {
  private static readonly FLOOR_MS = 0.001;
  private static readonly LOG_GROWTH = Math.log(1.01);
  private readonly counts = new Float64Array(
    Math.ceil(Math.log(LIMITS.timeoutMs / LatencyHistogram.FLOOR_MS) / LatencyHistogram.LOG_GROWTH) + 1,
  );
  count = 0;
  min = Infinity;
  max = 0;

  record(ms: number): void {
    this.counts[this.bucketOf(ms)]++;
    this.count++;
    this.min = Math.min(this.min, ms);
    this.max = Math.max(this.max, ms);
  }

  /** Nearest-rank percentile, p in (0, 1]; 0 when empty. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    let bucket = 0;
    while ((seen += this.counts[bucket]) < rank) bucket++;
    return Math.min(this.max, Math.max(this.min, this.middleOf(bucket)));
  }

  /** Bucket i > 0 holds (FLOOR * 1.01^(i-1), FLOOR * 1.01^i]; bucket 0 everything up to FLOOR. */
  private bucketOf(ms: number): number {
    if (ms <= LatencyHistogram.FLOOR_MS) return 0;
    const bucket = Math.ceil(Math.log(ms / LatencyHistogram.FLOOR_MS) / LatencyHistogram.LOG_GROWTH);
    return Math.min(bucket, this.counts.length - 1);
  }

  /** Geometric middle, at most 0.5% away from any value in the bucket. */
  private middleOf(bucket: number): number {
    return LatencyHistogram.FLOOR_MS * Math.exp((bucket - 0.5) * LatencyHistogram.LOG_GROWTH);
  }
}

// ---------------------------------------------------------------------------
// One connection

type Outcome = { answered: true; responder: string; latencyMs: number } | { answered: false; reason: string };

/**
 * Over HTTP/2: a stream the client never sent. Node's client closes its
 * session as a GOAWAY arrives, and nghttp2 then refuses (REFUSED_STREAM)
 * the streams still queued in it, unsent; a client honouring GOAWAY sends
 * them on a new session (RFC 9113 §8.7: refused means not processed).
 */
const NOT_SENT = 'not-sent';

const lost = (reason: string): Outcome => ({ answered: false, reason });

/** The response as received: its first KEPT_RESPONSE_BYTES, and how many bytes came in all. */
class Response {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  received = 0;

  add(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.kept >= KEPT_RESPONSE_BYTES) return;
    this.chunks.push(chunk);
    this.kept += chunk.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Judges a response the server has finished (closed): answered, or lost with why. */
function judge(response: Response, expectBody: Buffer, latencyMs: number): Outcome {
  const bytes = response.bytes();
  const headerEnd = bytes.indexOf('\r\n\r\n');
  if (headerEnd < 0) return lost('closed-early');
  const head = bytes.toString('latin1', 0, headerEnd);
  if (!/^HTTP\/\d\.\d 200(?:[ \r]|$)/.test(head)) return lost('bad-status');
  const bodyStart = headerEnd + 4;
  const declaredLength = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (declaredLength !== null && response.received - bodyStart < Number(declaredLength[1])) {
    return lost('closed-early');
  }
  const body = bytes.subarray(bodyStart);
  if (!body.subarray(0, expectBody.length).equals(expectBody)) return lost('bad-body');
  return { answered: true, responder: responderOf(body), latencyMs };
}

/** 'epoch=1 worker=0' from 'epoch=1 worker=0 pid=42\n...'. */
function responderOf(body: Buffer): string {
  const firstLine = body.toString('utf8', 0, Math.min(body.length, RESPONDER_BYTES)).split('\n', 1)[0];
  return firstLine.trim().split(/\s+/, 2).join(' ');
}

/**
 * An exchange's one outcome: the first that settle() is given, or 'timeout'
 * after timeoutMs; its socket is released then, and later events are ignored.
 */
function settleOnce(resolve: (outcome: Outcome) => void, timeoutMs: number, release: () => void): (outcome: Outcome) => void {
  let settled = false;
  const timer = setTimeout(() => settle(lost('timeout')), timeoutMs);
  function settle(outcome: Outcome): void {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    release();
    resolve(outcome);
  }
  return settle;
}

/** One HTTP/1.0 exchange; settles exactly once, whichever of end, error, close or timeout comes first. */
function exchange(target: LoadTarget, request: Buffer, expectBody: Buffer, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const response = new Response();
    const socket = connect({ host: target.host, port: target.port });
    const settle = settleOnce(resolve, timeoutMs, () => socket.destroy());
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => response.add(chunk));
    // HTTP/1.0: the server closing its side is what marks the response complete.
    socket.on('end', () => settle(judge(response, expectBody, performance.now() - startedAt)));
    socket.on('error', (error: NodeJS.ErrnoException) => settle(lost(error.code ?? 'error')));
    socket.on('close', () => settle(lost('closed-early')));
    socket.write(request);
  });
}

/** One datagram and its answer, from a socket of its own; settles exactly once. */
function datagramExchange(target: LoadTarget, request: Buffer, expectBody: Buffer, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    const socket = createSocket(isIP(target.host) === 6 ? 'udp6' : 'udp4');
    const settle = settleOnce(resolve, timeoutMs, () => socket.close());
    socket.on('message', (reply) => {
      if (!reply.subarray(0, expectBody.length).equals(expectBody)) return settle(lost('bad-body'));
      settle({ answered: true, responder: responderOf(reply), latencyMs: performance.now() - startedAt });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => settle(lost(error.code ?? 'error')));
    socket.send(request, target.port, target.host);
  });
}

/**
 * The sessions of an 'h2' load, one per slot: a slot's session is replaced
 * once it is closed or going away (a GOAWAY received closes it: Node then
 * takes no new stream on it), as a client honouring GOAWAY does.
 */
class Sessions {
  constructor(private readonly opened: () => void) {}

  private readonly slots: Array<http2.ClientHttp2Session | undefined> = [];
  /** The last stream id each session's newest GOAWAY names: the server processes every stream up to it. */
  private readonly promised = new WeakMap<http2.ClientHttp2Session, number>();

  of(slot: number, target: LoadTarget): http2.ClientHttp2Session {
    let session = this.slots[slot];
    if (session === undefined || session.closed || session.destroyed) {
      const host = isIP(target.host) === 6 ? `[${target.host}]` : target.host;
      session = http2.connect(`http://${host}:${target.port}`);
      this.opened();
      // Its streams fail with the error too, and are counted by why.
      session.on('error', () => {});
      const s = session;
      s.on('goaway', (_code: number, lastStreamID: number) => this.promised.set(s, lastStreamID));
      this.slots[slot] = session;
    }
    return session;
  }

  /**
   * A stream refused while its session's newest GOAWAY still promised to
   * process it was refused by the client itself (a server refusing it would
   * have sent a GOAWAY naming a lower stream first): it never left.
   */
  neverSent(session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream): boolean {
    const promised = this.promised.get(session);
    return stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && promised !== undefined && stream.id !== undefined && stream.id <= promised;
  }

  closeAll(): void {
    for (const session of this.slots) session?.close();
  }
}

/** One HTTP/2 stream (GET, no body); settles exactly once, whichever of end, error, close or timeout comes first. */
function streamExchange(sessions: Sessions, session: http2.ClientHttp2Session, path: string, expectBody: Buffer, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const startedAt = performance.now();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':path': path }, { endStream: true });
    } catch (error) {
      return resolve(lost((error as NodeJS.ErrnoException).code ?? 'error'));
    }
    const response = new Response();
    let status = 0;
    // Only a stream still open (timed out) is reset. One that ended needs no RST_STREAM, and
    // nghttp2's rapid-reset guard (CVE-2023-44487) counts those: past about 1000 on a session
    // the server ends it with GOAWAY INTERNAL_ERROR, failing the streams in flight on it.
    let ended = false;
    const settle = settleOnce(resolve, timeoutMs, () => {
      if (!ended) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => response.add(chunk));
    stream.on('end', () => {
      ended = true;
      const body = response.bytes();
      if (status !== 200) return settle(lost('bad-status'));
      if (!body.subarray(0, expectBody.length).equals(expectBody)) return settle(lost('bad-body'));
      settle({ answered: true, responder: responderOf(body), latencyMs: performance.now() - startedAt });
    });
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (sessions.neverSent(session, stream)) return settle(lost(NOT_SENT));
      settle(lost(`${error.code ?? 'error'}${stream.rstCode ? `/${stream.rstCode}` : ''}`));
    });
    stream.on('close', () => settle(lost('closed-early')));
  });
}

/**
 * Whether the response so far is complete without the connection closing:
 * 'complete' once the header and Content-Length bytes of body are in,
 * 'unframed' for a header without Content-Length (this client does not
 * parse chunked bodies), undefined while more is to come.
 */
function framing(response: Response): 'complete' | 'unframed' | undefined {
  const bytes = response.bytes();
  const headerEnd = bytes.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(bytes.toString('latin1', 0, headerEnd));
  if (length === null) return 'unframed';
  return response.received >= headerEnd + 4 + Number(length[1]) ? 'complete' : undefined;
}

/** Whether the server said it closes the connection after this response. */
function closesAfter(response: Response): boolean {
  const bytes = response.bytes();
  const head = bytes.toString('latin1', 0, bytes.indexOf('\r\n\r\n'));
  return /\r\nconnection:[^\r]*\bclose\b/i.test(head) || (/^HTTP\/1\.0 /.test(head) && !/\r\nconnection:[^\r]*keep-alive/i.test(head));
}

/** What happens to a connection while a request is outstanding on it. */
interface Outstanding {
  data(chunk: Buffer): void;
  /** The connection ended (FIN: 'closed-early'), failed (an error code) or closed. */
  gone(reason: string): void;
}

/**
 * One client of a keep-alive population, as a browser or an http.Agent is:
 * HTTP/1.1 requests one at a time on one connection, opened again only when
 * the server has closed it gracefully (Connection: close on a response, or
 * FIN or reset while no request was outstanding). It never retries: a request
 * written and not answered is lost, the race of a server closing an idle
 * connection as the next request is sent included.
 */
class KeepAliveClient {
  /** The open connection no request failed on, if any. */
  private socket: Socket | undefined;
  private outstanding: Outstanding | undefined;

  constructor(
    private readonly nextTarget: () => LoadTarget,
    private readonly opened: () => void,
  ) {}

  exchange(request: Buffer, expectBody: Buffer, timeoutMs: number): Promise<Outcome> {
    const socket = (this.socket ??= this.open());
    return new Promise((resolve) => {
      const startedAt = performance.now();
      const response = new Response();
      let reusable = false;
      const settle = settleOnce(resolve, timeoutMs, () => {
        this.outstanding = undefined;
        if (!reusable) this.drop(socket);
      });
      this.outstanding = {
        data: (chunk) => {
          response.add(chunk);
          const framed = framing(response);
          if (framed === 'unframed') return settle(lost('unframed'));
          if (framed === undefined) return;
          reusable = !closesAfter(response);
          settle(judge(response, expectBody, performance.now() - startedAt));
        },
        gone: (reason) => settle(lost(reason)),
      };
      socket.write(request);
    });
  }

  close(): void {
    if (this.socket) this.drop(this.socket);
  }

  private open(): Socket {
    const socket = connect(this.nextTarget());
    this.opened();
    socket.setNoDelay(true);
    // Events of a connection this client has dropped are ignored; on an idle
    // one they only mean the server closed it (or spoke out of turn).
    const on = (reason: string) => (): void => {
      if (this.socket !== socket) return;
      if (this.outstanding) this.outstanding.gone(reason);
      else this.drop(socket);
    };
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket && this.outstanding) this.outstanding.data(chunk);
      else on('unsolicited')();
    });
    socket.on('end', on('closed-early'));
    socket.on('error', (error: NodeJS.ErrnoException) => on(error.code ?? 'error')());
    socket.on('close', on('closed-early'));
    return socket;
  }

  private drop(socket: Socket): void {
    if (this.socket === socket) this.socket = undefined;
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// The run

class LocalRun implements LoadRun {
  readonly done: Promise<LoadResult>;
  private attempted = 0;
  private notSent = 0;
  private answered = 0;
  private lost = 0;
  private readonly errors = new Map<string, number>();
  private readonly byResponder = new Map<string, number>();
  private readonly lastAnswerAt = new Map<string, number>();
  private readonly lostStartedAt: number[] = [];
  private readonly latency = new LatencyHistogram();
  private readonly startedAt = performance.now();
  private endedAt: number | undefined;
  private stopped = false;
  /** Aborted by stop(): cuts the think times short. */
  private readonly stopping = new AbortController();
  private nextTarget = 0;
  private connections = 0;
  private readonly request: Buffer;
  private readonly expectBody: Buffer;
  private readonly sessions = new Sessions(() => this.connections++);

  constructor(private readonly settings: Settings) {
    const requests: Record<Protocol, string> = {
      udp: `GET ${settings.path}`,
      tcp: `GET ${settings.path} HTTP/1.0\r\nHost: baton\r\n\r\n`,
      keepalive: `GET ${settings.path} HTTP/1.1\r\nHost: baton\r\n\r\n`,
      h2: '', // streams carry their path as a header
    };
    this.request = Buffer.from(requests[settings.protocol], 'latin1');
    this.expectBody = Buffer.from(settings.expectBodyPrefix, 'utf8');
    setMaxListeners(settings.concurrency, this.stopping.signal); // one think time per loop
    const { signal } = settings;
    const onAbort = (): void => this.stop();
    if (signal?.aborted) this.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    const loops = Array.from({ length: settings.concurrency * (settings.protocol === 'h2' ? settings.streams : 1) }, (_, i) => this.loop(i));
    this.done = Promise.all(loops).then(() => {
      signal?.removeEventListener('abort', onAbort);
      this.sessions.closeAll();
      this.endedAt = performance.now();
      return this.snapshot();
    });
  }

  stop(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  snapshot(): LoadResult {
    const durationMs = (this.endedAt ?? performance.now()) - this.startedAt;
    const finished = this.answered + this.lost;
    return {
      attempted: this.attempted,
      notSent: this.notSent,
      answered: this.answered,
      lost: this.lost,
      connections: this.connections,
      errors: Object.fromEntries(this.errors),
      byResponder: Object.fromEntries(this.byResponder),
      lastAnswerAt: Object.fromEntries(this.lastAnswerAt),
      lostStartedAt: [...this.lostStartedAt],
      latencyMs: {
        p50: roundMs(this.latency.percentile(0.5)),
        p99: roundMs(this.latency.percentile(0.99)),
        max: roundMs(this.latency.max),
        count: this.latency.count,
      },
      durationMs: roundMs(durationMs),
      connectionsPerSecond: durationMs > 0 ? Math.round((finished * 1000) / durationMs) : 0,
    };
  }

  /** One of `concurrency` loops (× streams with h2): each chains exchanges, so at most that many are in flight. */
  private async loop(index: number): Promise<void> {
    const { protocol, timeoutMs } = this.settings;
    const client = protocol === 'keepalive' ? new KeepAliveClient(() => this.target(), () => this.connections++) : undefined;
    while (this.mayStartAnother()) {
      this.attempted++;
      const startedAt = Date.now();
      const outcome = await (client ? client.exchange(this.request, this.expectBody, timeoutMs) : this.exchange(index));
      if (!outcome.answered && outcome.reason === NOT_SENT) {
        this.attempted--;
        this.notSent++;
      } else this.count(outcome, startedAt);
      await this.think();
    }
    client?.close();
  }

  private target(): LoadTarget {
    return this.settings.targets[this.nextTarget++ % this.settings.targets.length];
  }

  private async think(): Promise<void> {
    const { thinkMs } = this.settings;
    if (!thinkMs || this.stopped) return;
    const ms = thinkMs.min + Math.random() * (thinkMs.max - thinkMs.min);
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => {}); // aborted: the run is stopping
  }

  private exchange(index: number): Promise<Outcome> {
    const { protocol, targets, streams, path, timeoutMs } = this.settings;
    if (protocol === 'h2') {
      // A slot's streams share its session, which stays on its first target.
      const slot = Math.floor(index / streams);
      return streamExchange(this.sessions, this.sessions.of(slot, targets[slot % targets.length]), path, this.expectBody, timeoutMs);
    }
    this.connections++;
    return (protocol === 'udp' ? datagramExchange : exchange)(this.target(), this.request, this.expectBody, timeoutMs);
  }

  private mayStartAnother(): boolean {
    return (
      !this.stopped &&
      this.attempted < this.settings.maxConnections &&
      performance.now() - this.startedAt < this.settings.durationMs
    );
  }

  private count(outcome: Outcome, startedAt: number): void {
    if (outcome.answered) {
      this.answered++;
      increment(this.byResponder, outcome.responder);
      this.lastAnswerAt.set(outcome.responder, Date.now());
      this.latency.record(outcome.latencyMs);
    } else {
      this.lost++;
      increment(this.errors, outcome.reason);
      if (this.lostStartedAt.length < LOST_KEPT) this.lostStartedAt.push(startedAt);
    }
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** To the microsecond: finer is noise, and it keeps printed results short. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Runs a load in this process. Throws BatonError(INVALID_ARGUMENT) before connecting anywhere if an option is bad. */
export function startLoad(options: LoadOptions): LoadRun {
  return new LocalRun(validateOptions(options));
}

// ---------------------------------------------------------------------------
// In a separate process

const EMPTY_RESULT: LoadResult = {
  attempted: 0,
  notSent: 0,
  answered: 0,
  lost: 0,
  connections: 0,
  errors: {},
  byResponder: {},
  lastAnswerAt: {},
  lostStartedAt: [],
  latencyMs: { p50: 0, p99: 0, max: 0, count: 0 },
  durationMs: 0,
  connectionsPerSecond: 0,
};

/** The command line of cli.ts for these settings. */
function cliArgs(settings: Settings): string[] {
  const args = settings.targets.map(({ host, port }) => `--target=${host.includes(':') ? `[${host}]` : host}:${port}`);
  args.push(
    `--protocol=${settings.protocol}`,
    `--concurrency=${settings.concurrency}`,
    `--streams=${settings.streams}`,
    `--duration-ms=${settings.durationMs}`,
    `--timeout-ms=${settings.timeoutMs}`,
    `--expect-body-prefix=${settings.expectBodyPrefix}`,
    `--path=${settings.path}`,
  );
  if (settings.thinkMs) args.push(`--think-ms=${settings.thinkMs.min}-${settings.thinkMs.max}`);
  if (settings.maxConnections !== Infinity) args.push(`--max-connections=${settings.maxConnections}`);
  return args;
}

/**
 * Runs a load in a child process (cli.js over IPC), so the load and the
 * server under test do not share an event loop. snapshot() is the child's
 * latest report (every 200 ms); done rejects if the child exits without a
 * final result.
 */
export function spawnLoad(options: Omit<LoadOptions, 'signal'>): LoadRun & { pid: number } {
  const settings = validateOptions({ ...options, signal: undefined });
  const child = fork(join(__dirname, 'cli.js'), cliArgs(settings), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let latest = EMPTY_RESULT;
  let final: LoadResult | undefined;
  child.on('message', (message: LoadProcessMessage) => {
    latest = message.result;
    if (message.type === 'result') final = message.result;
  });
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (final !== undefined) resolve(final);
      else reject(new Error(`load process ${child.pid} exited (${signal ?? `code ${code}`}) without a result`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) {
    done.catch(() => {}); // the reason is in the error thrown here
    throw new Error('could not start the load process');
  }
  return {
    pid,
    done,
    snapshot: () => latest,
    stop: () => {
      // The callback takes a send failure: the child is already gone, and done says how.
      if (child.connected) child.send({ type: 'stop' }, () => {});
    },
  };
}
