import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import * as net from 'node:net';
import { test, type TestContext } from 'node:test';
import { DrainController } from '../../src/drain/controller';
import { drainDgram } from '../../src/drain/dgram';
import { drainHttp } from '../../src/drain/http';
import { drainHttp2 } from '../../src/drain/http2';
import { drainNet } from '../../src/drain/net';
import { sleep, waitFor } from '../support/wait';

async function listen<S extends net.Server>(server: S): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
  socket: net.Socket;
}

function answerTo(req: http.ClientRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body, socket: req.socket! }));
    });
    req.on('error', reject);
  });
}

function get(port: number, agent: http.Agent, path = '/', client: typeof http | typeof https = http): Promise<Answer> {
  return answerTo(client.get({ host: '127.0.0.1', port, path, agent, rejectUnauthorized: false }));
}

/** After the test: the drain called off, the server and the clients' connections closed. */
function cleanUp(t: TestContext, controller: DrainController, server: http.Server, agents: http.Agent[]): void {
  t.after(() => {
    controller.stop();
    server.closeAllConnections();
    server.close();
    agents.forEach((agent) => agent.destroy());
  });
}

/** A self-signed certificate and its key, in one PEM; undefined (the test skipped) without openssl. */
function selfSigned(t: TestContext): string | undefined {
  try {
    return execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', '-', '-out', '-'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    t.skip('openssl is not available to make a test certificate');
    return undefined;
  }
}

/** Whether `socket` closes before the drain's deadline. */
function closesBeforeDeadline(socket: net.Socket, controller: DrainController): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(!controller.overdue);
  return Promise.race([once(socket, 'close').then(() => true), once(controller, 'deadline').then(() => false)]);
}

test('http: keep-alive clients get every answer and Connection: close before the deadline; idle ones are closed; requests in flight finish', async (t) => {
  const [drainMs, checkMs] = [10_000, 100];
  // Every draw is 0.3: responses close from 30% of the drain on, the idle connection once idle past it. The
  // drain's clock is ours: it stands still before 30%, then jumps past it; its deadline (a real timer) stays far.
  let clock = 0;
  let past30 = false;
  const controller = new DrainController({ random: () => 0.3, now: () => clock });
  let slowArrived = false;
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') {
      slowArrived = true;
      setTimeout(() => res.end('slow done'), 300);
    } else res.end('ok');
  });
  drainHttp(server, controller, { checkMs });
  const port = await listen(server);
  const agents: http.Agent[] = [];
  cleanUp(t, controller, server, agents);

  let draining = false;
  /** When a connection closed: past 30% of the drain, and before its deadline? */
  const closedWhen = () => ({ past30, beforeDeadline: !controller.overdue });
  const busyClient = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    let answered = 0;
    for (;;) {
      const answer = await get(port, agent);
      assert.equal(answer.body, 'ok');
      answered++;
      if (answer.connection === 'close') {
        assert.ok(draining, 'no Connection: close before the drain');
        return { answered, ...closedWhen() };
      }
      if (!draining) await sleep(5);
    }
  };
  const busy = [busyClient(), busyClient(), busyClient()];

  const [idleAgent, slowAgent] = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })];
  agents.push(idleAgent, slowAgent);
  const idle = await get(port, idleAgent);
  assert.equal(idle.connection, 'keep-alive');
  const slow = get(port, slowAgent, '/slow');
  await waitFor(() => slowArrived, { what: 'the slow request in flight' });

  draining = true;
  controller.start(drainMs);
  const idleClosed = once(idle.socket, 'close').then(closedWhen);
  await sleep(3 * checkMs); // before 30%: three checks find the idle connection idle, and close nothing
  [clock, past30] = [drainMs * 0.3 + 1, true];

  const results = await Promise.all(busy);
  for (const { answered, ...when } of results) {
    assert.ok(answered > 1);
    assert.deepEqual(when, { past30: true, beforeDeadline: true }, 'closed from 30% of the drain on, before its deadline');
  }
  const slowAnswer = await slow;
  assert.deepEqual([slowAnswer.status, slowAnswer.body], [200, 'slow done'], 'the request in flight finished');
  assert.deepEqual(await idleClosed, { past30: true, beforeDeadline: true }, 'the idle connection closed from 30% of the drain on, before its deadline');
  await waitFor(() => controller.connections === 0 || controller.overdue, { timeoutMs: drainMs, what: 'every connection closed' });
  assert.equal(controller.connections, 0, 'every connection closed before the deadline');
});

test('http: a request the application takes through checkContinue is followed: its slow upload finishes, answered with Connection: close', async (t) => {
  const checkMs = 50;
  const controller = new DrainController({ strategy: 'immediate' });
  const server = http.createServer();
  // With a checkContinue listener Node emits neither 'request' nor a 100 Continue of its own.
  server.on('checkContinue', (req, res) => {
    res.writeContinue();
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => res.end(`got ${bytes}`));
  });
  drainHttp(server, controller, { checkMs });
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true });
  cleanUp(t, controller, server, [agent]);

  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent, headers: { expect: '100-continue' } });
  const answer = answerTo(req);
  await once(req, 'continue');
  controller.start(2_000);
  const startedAt = performance.now();
  for (let i = 0; i < 5; i++) {
    req.write('x'.repeat(100));
    await sleep(40);
  }
  req.end();
  const { status, connection, body } = await answer;
  assert.deepEqual({ status, connection, body }, { status: 200, connection: 'close', body: 'got 500' });
  assert.ok(performance.now() - startedAt > 2 * checkMs, 'the upload lasted over two checks');
});

test('http: following costs no closure per connection or request: sockets share their close listeners, responses get none', async (t) => {
  // What a response and its socket carry as the application sees them, with and without the drain.
  const serve = async (drained: boolean) => {
    const controller = new DrainController();
    const seen: Array<{ socket: Function[]; response: number }> = [];
    const server = http.createServer((req, res) => {
      seen.push({ socket: req.socket.listeners('close'), response: res.listenerCount('close') });
      res.end('ok');
    });
    if (drained) drainHttp(server, controller);
    const agents = [new http.Agent(), new http.Agent()]; // a connection each
    cleanUp(t, controller, server, agents);
    const port = await listen(server);
    for (const agent of agents) await get(port, agent);
    return seen;
  };
  const [plain, drained] = [await serve(false), await serve(true)];
  assert.equal(drained[0]!.response, plain[0]!.response, 'no listener on a response');
  assert.equal(drained[0]!.socket.length, plain[0]!.socket.length + 2, 'the follower\'s and the controller\'s');
  // Node binds one of its own per socket; the drain adds none that differ.
  const ownPerSocket = (seen: typeof plain) => seen[0]!.socket.filter((listener, i) => listener !== seen[1]!.socket[i]).length;
  assert.equal(ownPerSocket(drained), ownPerSocket(plain), 'the same functions on every socket');
});

test('http: once the drain time is over an idle keep-alive connection closes at that check, not a check later', async (t) => {
  const [checkMs, drainMs] = [600, 900];
  // Every draw is 0.99: nothing closes before the deadline.
  const controller = new DrainController({ random: () => 0.99 });
  const server = http.createServer((_req, res) => res.end('ok'));
  drainHttp(server, controller, { checkMs });
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true });
  cleanUp(t, controller, server, [agent]);
  const first = await get(port, agent);
  controller.start(drainMs);
  const startedAt = performance.now();
  let deadlineAt = 0;
  controller.once('deadline', () => (deadlineAt = performance.now()));
  const closedAt = once(first.socket, 'close').then(() => performance.now());
  // A request after the check at 600 ms, answered well before the deadline at 900: the check at the deadline is the first to find the connection idle.
  await sleep(650);
  const again = await get(port, agent);
  assert.equal(again.socket, first.socket);
  assert.equal(again.connection, 'keep-alive');
  // Measured from the deadline as it fired, not as it was due: a late timer is not a late close.
  const [closed, deadline] = [(await closedAt) - startedAt, deadlineAt - startedAt];
  assert.ok(closed >= deadline && closed < deadline + checkMs / 2, `closed at ${closed} ms, the deadline at ${deadline} ms`);
});

test('https: responses carry Connection: close once the drain says so (immediate)', async (t) => {
  const pem = selfSigned(t);
  if (pem === undefined) return;
  const controller = new DrainController({ strategy: 'immediate' });
  const server = https.createServer({ key: pem, cert: pem }, (_req, res) => res.end('ok'));
  drainHttp(server, controller, { checkMs: 50 });
  const port = await listen(server);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  cleanUp(t, controller, server, [agent]);
  assert.equal((await get(port, agent, '/', https)).connection, 'keep-alive');
  assert.equal(controller.connections, 1, 'the TLS connection is tracked');
  controller.start(10_000);
  const answer = await get(port, agent, '/', https);
  assert.equal(answer.connection, 'close');
  if (!answer.socket.destroyed) await once(answer.socket, 'close');
});

test('http2: clients receive GOAWAY and their streams in flight finish', async (t) => {
  const controller = new DrainController({ random: () => 0.5 });
  const server = http2.createServer();
  let received = 0;
  server.on('stream', (stream, headers) => {
    received++;
    setTimeout(() => {
      stream.respond({ ':status': 200 });
      stream.end(`done ${headers[':path']}`);
    }, 300);
  });
  drainHttp2(server, controller, { checkMs: 50 });
  const port = await listen(server);

  const client = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => {
    controller.stop();
    client.destroy();
    server.close();
  });
  const goaway = once(client, 'goaway');
  const streams = ['/a', '/b', '/c'].map(
    (path) =>
      new Promise<string>((resolve, reject) => {
        let body = '';
        client.request({ ':path': path }).setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body)).on('error', reject);
      }),
  );
  await waitFor(() => received === 3, { what: 'the three streams at the server' });
  controller.start(400); // the session is asked at every check; its draw, 0.5, says yes from 200 ms on

  const [code] = (await goaway) as [number];
  assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
  assert.deepEqual(await Promise.all(streams), ['done /a', 'done /b', 'done /c']);
  await once(client, 'close');
  await waitFor(() => controller.connections === 0, { what: 'the session untracked' });
});

test('http2 with allowHTTP1: HTTP/1.1 connections are counted, answered with Connection: close, and closed once idle', async (t) => {
  const pem = selfSigned(t);
  if (pem === undefined) return;
  const controller = new DrainController({ strategy: 'immediate' });
  const server = http2.createSecureServer({ key: pem, cert: pem, allowHTTP1: true }, (_req, res) => res.end('ok'));
  drainHttp2(server, controller, { checkMs: 50 });
  const port = await listen(server);
  const [busyAgent, idleAgent] = [new https.Agent({ keepAlive: true, maxSockets: 1 }), new https.Agent({ keepAlive: true })];
  const client = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  t.after(() => {
    controller.stop();
    client.destroy();
    busyAgent.destroy();
    idleAgent.destroy();
    server.close();
  });
  await new Promise<void>((resolve, reject) => void client.request({ ':path': '/' }).on('error', reject).on('end', resolve).resume());
  const idle = await get(port, idleAgent, '/', https);
  assert.equal(idle.connection, 'keep-alive');
  assert.equal((await get(port, busyAgent, '/', https)).connection, 'keep-alive');
  assert.equal(controller.connections, 3, 'one HTTP/2 session and two HTTP/1.1 connections');

  controller.start(1_000);
  const idleClosed = closesBeforeDeadline(idle.socket, controller);
  const answer = await get(port, busyAgent, '/', https);
  assert.deepEqual([answer.body, answer.connection], ['ok', 'close']);
  assert.equal(await idleClosed, true, 'the idle HTTP/1.1 connection closed before the deadline');
  await waitFor(() => controller.connections === 0, { what: 'every connection untracked' });
});

test('net: a connection ends after the exchange the drain decides on; one that stays quiet ends at the deadline', async (t) => {
  const controller = new DrainController({ strategy: 'immediate' });
  const server = net.createServer();
  const adapter = drainNet(server, controller);
  server.on('connection', (socket) => {
    socket.setEncoding('utf8').on('data', (line: string) => {
      socket.write(`echo ${line}`);
      adapter.exchangeDone(socket);
    });
  });
  const port = await listen(server);
  const talker = net.connect(port, '127.0.0.1').setEncoding('utf8');
  const quiet = net.connect(port, '127.0.0.1');
  t.after(() => {
    talker.destroy();
    quiet.destroy();
    controller.stop();
    adapter.detach();
    server.close();
  });
  await Promise.all([once(talker, 'connect'), once(quiet, 'connect')]);
  let heard = '';
  talker.on('data', (d: string) => (heard += d));
  talker.write('one\n');
  await waitFor(() => heard !== '', { what: 'the first echo' });
  assert.equal(controller.connections, 2);

  let deadline = false;
  controller.on('deadline', () => (deadline = true));
  controller.start(1000); // far enough for the exchange to end first on a busy machine
  talker.write('two\n');
  await once(talker, 'end');
  assert.equal(heard, 'echo one\necho two\n', 'the exchange finished before the end');
  assert.equal(deadline, false, 'ended after its exchange, not at the deadline');
  await once(quiet.resume(), 'end');
  assert.equal(deadline, true, 'the quiet one ended at the deadline');
  assert.throws(() => adapter.exchangeDone({} as net.Socket), /net.Socket/);
});

test('dgram: nothing to close during the drain; the socket stops reading at the deadline', async (t) => {
  const controller = new DrainController();
  const socket = dgram.createSocket('udp4');
  t.after(() => controller.stop());
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  drainDgram(socket, controller);
  controller.start(50);
  assert.equal(controller.connections, 0);
  await once(socket, 'close');
  assert.equal(controller.overdue, true);
});

test('adapters validate their arguments', () => {
  const controller = new DrainController();
  assert.throws(() => drainHttp(net.createServer() as never, controller), /http.Server/);
  assert.throws(() => drainHttp(http.createServer(), {} as DrainController), /DrainController/);
  assert.throws(() => drainHttp(http.createServer(), controller, { checkMs: 0 }), /checkMs/);
  assert.throws(() => drainHttp2({} as never, controller), /http2 server/);
  assert.throws(() => drainNet({} as never, controller), /net.Server/);
  assert.throws(() => drainDgram({} as never, controller), /dgram.Socket/);
});
