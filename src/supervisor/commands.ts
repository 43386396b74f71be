// `baton reload|status|rollback|upgrade`: what the command line prints, and its exit
// code. The supervisor renders outcomes itself (its log says the same);
// only the status table is laid out here.

import { supervisorAddress } from '../channel/address';
import { BatonError, ErrorCodes } from '../errors';
import { resolveOptions } from '../options';
import { askSupervisor, supervisorOfPidFile } from './client';
import type { Command, GenerationStatus, SupervisorStatus } from './messages';
import type { CommandFlags } from './options';

/** LSB's "program is not running", for `baton status`. */
export const NOT_RUNNING_EXIT = 3;

export async function runCommand(command: Command, flags: CommandFlags): Promise<number> {
  const print = (text: string) => process.stdout.write(`${text}\n`);
  try {
    const address = flags.pidFile ? supervisorOfPidFile(flags.pidFile) : supervisorAddress(resolveOptions({ socketPath: flags.socketPath }).socketPath, flags.baseId);
    const reply = await askSupervisor(address, command, flags.timeoutS * 1000);
    if (reply.type === 'snapshot') {
      print(flags.json ? JSON.stringify(reply.status) : statusText(reply.status));
      return reply.status.generations.some((g) => g.state === 'serving') ? 0 : NOT_RUNNING_EXIT;
    }
    const { type: _type, protocol: _protocol, re: _re, ...outcome } = reply;
    print(flags.json ? JSON.stringify(outcome) : outcome.message);
    return outcome.ok ? 0 : 1;
  } catch (error) {
    if (!(error instanceof BatonError)) throw error;
    const notRunning = error.code === ErrorCodes.NOT_RUNNING;
    if (flags.json) print(JSON.stringify({ ok: false, code: error.code, message: error.message }));
    else process.stderr.write(`baton: ${error.message}\n`);
    return notRunning && command === 'status' ? NOT_RUNNING_EXIT : 1;
  }
}

export function statusText(status: SupervisorStatus): string {
  const lines = [
    `supervisor pid ${status.pid}${status.batonVersion ? ` (baton ${status.batonVersion})` : ''}, base id ${status.baseId ?? '(choosing)'}, control socket ${status.socket}`,
    `${status.restarts} restarts, ${status.rollbacks} rollbacks`,
  ];
  if (status.generations.length === 0) lines.push('no generation running');
  for (const g of [...status.generations].reverse()) lines.push(generationLine(g));
  return lines.join('\n');
}

function generationLine(g: GenerationStatus): string {
  const parts = [`epoch ${g.epoch}`, `pid ${g.pid}`, g.state];
  if (g.workers !== null) parts.push(`${g.workers} workers`);
  if (g.listeners.length > 0) parts.push(g.listeners.map((l) => `${l.name} (${l.sockets} sockets)`).join(', '));
  if (g.sinceTakeOverMs !== null) parts.push(`took over ${(g.sinceTakeOverMs / 1000).toFixed(1)} s ago`);
  if (g.connections !== null) parts.push(`${g.connections} connections open`);
  return parts.join(', ');
}
