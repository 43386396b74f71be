// The client end of the supervisor's control socket: finds the supervisor
// (by --socket-path and --base-id, or by the pid in its --pid-file), asks one
// command and waits for its answer, for at most the time it was given.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as native from '../binding';
import { asSupervisorAddress, listeningUnixSocketsByInode, type ControlAddress } from '../channel/address';
import { Channel } from '../channel/channel';
import { closeAll } from '../channel/connection';
import { BatonError, ErrorCodes, errorCodeOf, isSystemError } from '../errors';
import { ProtocolError } from '../protocol/messages';
import { SUPERVISOR_PROTOCOL, decodeRecord, encodeRecord, type Command, type Outcome, type StatusReply } from './messages';

const notRunning = (message: string, cause?: unknown) => new BatonError(ErrorCodes.NOT_RUNNING, message, { cause });

/**
 * The control socket of the supervisor whose pid is in `pidFile`: the one
 * listening socket of that process named like a supervisor's (read from
 * /proc, so no other file has to be kept in step with the pid file).
 */
export function supervisorOfPidFile(pidFile: string): ControlAddress {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch (error) {
    throw notRunning(`no pid file at ${pidFile}: is \`baton run --pid-file ${pidFile}\` running?`, error);
  }
  if (!Number.isInteger(pid) || pid < 1) throw notRunning(`${pidFile} holds no pid`);
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (error) {
    if (isSystemError(error, 'EACCES')) throw new BatonError(ErrorCodes.PEER_REFUSED, `pid ${pid} (from ${pidFile}) runs as another user: run this as that user`, { cause: error });
    throw notRunning(`pid ${pid} (from ${pidFile}) is not running`, error);
  }
  const listening = listeningUnixSocketsByInode();
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const name = listening.get(Number(/^socket:\[(\d+)\]$/.exec(link)?.[1]));
    const address = name === undefined ? undefined : asSupervisorAddress(name);
    if (address) return address;
  }
  throw notRunning(`pid ${pid} (from ${pidFile}) has no supervisor control socket: it is not a baton supervisor, or not one of this version`);
}

/** Sends `command` to the supervisor at `address` and resolves with its answer; an error reply rejects with it. */
export async function askSupervisor(address: ControlAddress, command: Command, timeoutMs: number): Promise<Outcome | StatusReply> {
  let fd: number;
  try {
    fd = native.unixConnect(address.path, address.abstract);
  } catch (error) {
    if (isSystemError(error, 'ENOENT') || isSystemError(error, 'ECONNREFUSED')) {
      throw notRunning(`no baton supervisor answers at ${address.display}: is \`baton run\` running with this --socket-path and --base-id?`, error);
    }
    throw error;
  }
  const channel = new Channel(fd);
  try {
    const peer = native.peerCredentials(fd);
    const uid = process.getuid?.() ?? 0;
    // Root may ask any supervisor; anyone else trusts only its own or root's: a name in the abstract namespace is anyone's to take.
    if (uid !== 0 && peer.uid !== uid && peer.uid !== 0) {
      throw new BatonError(ErrorCodes.PEER_REFUSED, `the process at ${address.display} (pid ${peer.pid}) runs as uid ${peer.uid}, not as us (${uid}) nor root`);
    }
    return await answer(channel, command, timeoutMs);
  } finally {
    channel.close();
  }
}

function answer(channel: Channel, command: Command, timeoutMs: number): Promise<Outcome | StatusReply> {
  const id = 1;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BatonError(ErrorCodes.TIMEOUT, `no answer to ${command} within ${timeoutMs / 1000} s${command === 'reload' ? ' (the reload goes on: `baton status` shows it)' : ''}`)),
      timeoutMs,
    );
    const settle = (settled: () => void) => {
      clearTimeout(timer);
      settled();
    };
    channel.on('message', (data, fds) => {
      closeAll(fds);
      let reply;
      try {
        reply = decodeRecord(data);
      } catch (error) {
        return settle(() => reject(error));
      }
      if (reply.type === 'error') return settle(() => reject(new BatonError(errorCodeOf(reply.code), `the supervisor refused ${command}: ${reply.message}`)));
      if ((reply.type === 'outcome' || reply.type === 'snapshot') && reply.re === id) return settle(() => resolve(reply));
      settle(() => reject(new ProtocolError(`the supervisor answered ${command} with a ${reply.type} record`)));
    });
    channel.on('malformed', (reason) => settle(() => reject(new ProtocolError(reason))));
    channel.on('close', (error) =>
      settle(() => reject(new BatonError(ErrorCodes.CHANNEL_CLOSED, `the supervisor closed the connection before answering ${command}`, { cause: error }))),
    );
    channel.send(encodeRecord({ type: command, protocol: SUPERVISOR_PROTOCOL, id }));
  });
}
