#!/usr/bin/env node
// The Node `cluster` alternative to baton: a primary that forks N workers
// sharing one listener, round-robin (the primary accepts and hands each
// connection to a worker). SIGHUP re-reads the config and replaces the
// workers one by one (a rolling restart); SIGTERM stops. Same config file
// and same answers as examples/http-server.mjs:
//
//   node cluster-server.mjs --config FILE [--epoch N]
//
// PM2 in cluster mode runs the same file as its workers (pm2.mjs).
//
// It reports on stdout, one JSON line each: { event: 'serving', epoch }
// once every worker listens, { event: 'retired', epoch } once the workers
// of a replaced epoch have all exited.

import cluster from 'node:cluster';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

cluster.schedulingPolicy = cluster.SCHED_RR; // Node's default on Linux, stated: it is what the bench compares

if (cluster.isPrimary) {
  const { values } = parseArgs({ options: { config: { type: 'string' }, epoch: { type: 'string', default: '0' } } });
  const readConfig = () => JSON.parse(readFileSync(values.config, 'utf8'));
  const report = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
  let epoch = Number(values.epoch);

  const fork = (index) => {
    const [, host, port] = /^(.*):(\d+)$/.exec(readConfig().listen[0]);
    const worker = cluster.fork({ EPOCH: String(epoch), INDEX: String(index), HOST: host, PORT: port });
    return new Promise((resolve, reject) => {
      worker.once('listening', () => resolve(worker));
      worker.once('exit', (code) => reject(new Error(`worker ${index} of epoch ${epoch} exited (code ${code}) before listening`)));
    });
  };
  const retire = async (workers) => {
    const exits = workers.map((worker) => once(worker, 'exit'));
    for (const worker of workers) worker.disconnect(); // stops accepting, lets open connections finish
    await Promise.all(exits);
  };

  let workers = await Promise.all(Array.from({ length: readConfig().concurrency }, (_, i) => fork(i)));
  report({ event: 'serving', epoch });

  // One new worker up, then one old one out, so capacity never drops by more than one worker.
  const roll = async () => {
    const old = workers;
    const retiring = [];
    const count = readConfig().concurrency;
    epoch++;
    workers = [];
    for (let i = 0; i < Math.max(count, old.length); i++) {
      if (i < count) workers.push(await fork(i));
      if (i < old.length) retiring.push(retire([old[i]]));
    }
    report({ event: 'serving', epoch });
    await Promise.all(retiring);
    report({ event: 'retired', epoch: epoch - 1 });
  };
  let rolling = Promise.resolve();
  process.on('SIGHUP', () => (rolling = rolling.then(roll)));
  process.on('SIGTERM', () => void retire(workers).then(() => process.exit(0)));
} else {
  // Under PM2 (pm2.mjs), PM2 is the primary: the index is its NODE_APP_INSTANCE.
  const { EPOCH, INDEX = process.env.NODE_APP_INSTANCE, HOST, PORT } = process.env;
  const server = http.createServer((_req, res) => res.end(`epoch=${EPOCH} worker=${INDEX}\n`)).listen(Number(PORT), HOST);
  // PM2 stops a worker with SIGINT (SIGKILL after its kill_timeout); closing the server first is its documented graceful stop.
  process.on('SIGINT', () => server.close(() => process.exit(0)));
}
