#!/usr/bin/env node
// npm run bench [-- --quick] [-- --json FILE] [-- --only micro,restart,takeover,throughput,overhead,soak]
//
// How fast baton hands over and how little a restart disturbs, each figure
// beside an alternative measured in the same run on this machine. Targets
// are reported, never asserted: a missed one is printed as MISSED.

import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, arch, cpus, loadavg, release, totalmem, type } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { version } from './alternatives/installed.mjs';
import { pm2Version } from './alternatives/pm2.mjs';
import { fdPassing } from './micro/fd-passing.mjs';
import { handoff } from './micro/handoff.mjs';
import { overhead } from './overhead.mjs';
import { protocol } from './micro/protocol.mjs';
import { sockets } from './micro/sockets.mjs';
import { Results } from './report.mjs';
import { http2Restarts } from './restart/http2.mjs';
import { keepAliveSection } from './restart/keepalive.mjs';
import { restartSection } from './restart/run.mjs';
import { soak } from './soak.mjs';
import { takeover } from './takeover.mjs';
import { throughput } from './throughput.mjs';

const SECTIONS = {
  micro: [fdPassing, handoff, sockets, protocol],
  restart: [restartSection, keepAliveSection, http2Restarts],
  takeover: [takeover],
  throughput: [throughput],
  overhead: [overhead],
  soak: [soak],
};

/** maxTime: seconds per benchmark.js case; budgetMs: per handoff variant; durationMs: per throughput load. */
const MODES = {
  full: { quick: false, maxTime: 1, budgetMs: 1000, durationMs: 3000 },
  quick: { quick: true, maxTime: 0.05, budgetMs: 100, durationMs: 1000 },
};

const usage = `usage: npm run bench -- [--quick] [--json FILE] [--only ${Object.keys(SECTIONS).join(',')}]`;

function refuse(message) {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'string' },
        only: { type: 'string', default: Object.keys(SECTIONS).join(',') },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    refuse(error.message);
  }
  if (values.help) {
    console.error(usage);
    process.exit(0);
  }
  const only = [...new Set(values.only.split(','))];
  const unknown = only.filter((name) => !Object.hasOwn(SECTIONS, name));
  if (unknown.length > 0) refuse(`unknown section ${unknown.join(', ')}`);
  if (values.json !== undefined) {
    // Before the run, not after it: a bad path would waste the whole run.
    try {
      accessSync(dirname(resolve(values.json)), constants.W_OK);
    } catch (error) {
      refuse(`--json ${values.json}: cannot write there (${error.code})`);
    }
  }
  return { ...values, only };
}

function machine(mode) {
  let tcpMigrateReq;
  try {
    tcpMigrateReq = Number(readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8'));
  } catch {
    // Kernel before 5.14.
  }
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()} ${arch()}`,
    node: process.version,
    tcpMigrateReq,
    nginx: version('nginx') ?? null,
    haproxy: version('haproxy') ?? null,
    pm2: pm2Version() ?? null,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    mode,
    date: new Date().toISOString(),
  };
}

const { quick, json, only } = options();
const mode = quick ? 'quick' : 'full';
const info = machine(mode);
console.log(
  `baton bench (${mode}) on ${info.cores} CPU cores (${info.cpu}), ${info.memoryGiB} GiB, ${info.os}, node ${info.node}; ` +
    `load average ${info.loadAverage.join(' ')}. The load generator shares these cores with the servers: compare figures within this run.`,
);
const results = new Results();
for (const name of only) {
  for (const section of SECTIONS[name]) {
    try {
      await section(results, MODES[mode]);
    } catch (error) {
      console.error(`\n${name} (${section.name}) failed: ${error.stack}`);
      process.exitCode = 1;
    }
  }
}
if (json) {
  writeFileSync(json, `${JSON.stringify({ machine: info, results: results.toJSON() }, null, 2)}\n`);
  console.log(`\nwrote ${results.entries.length} figures to ${json}`);
}
