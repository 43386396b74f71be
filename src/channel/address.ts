// Where generations find each other. Generation E of base id B listens at
// `<socketPath>_<B>_<E>` for its child, E+1. The full epoch (not Envoy's
// epoch % 3) keeps names unique however many older generations still drain.
// The supervisor of base id B answers `baton reload|status|rollback` at
// `<socketPath>_<B>_supervisor`: not a number, so never an epoch's name.
// A leading '@' puts the name in the abstract namespace (no file, no mode:
// SO_PEERCRED is then the only gate, and it is always checked; any local
// user can bind any name there, so a name held by another uid is not ours).

import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import * as native from '../binding';
import type { Credentials } from '../binding';
import { BatonError, ErrorCodes, isSystemError } from '../errors';

export interface ControlAddress {
  /** Without the leading '@' when abstract. */
  path: string;
  abstract: boolean;
  /** As a user writes it, '@name' for abstract. */
  display: string;
}

export function controlAddress(socketPath: string, baseId: number, epoch: number): ControlAddress {
  return addressOf(`${socketPath}_${baseId}_${epoch}`);
}

/** Where the supervisor of base id `baseId` answers its command line. */
export function supervisorAddress(socketPath: string, baseId: number): ControlAddress {
  return addressOf(`${socketPath}_${baseId}_supervisor`);
}

/** A supervisor's address, if `name` (as listeningUnixSockets spells it) is one. */
export function asSupervisorAddress(name: string): ControlAddress | undefined {
  return /_\d+_supervisor$/.test(name) ? addressOf(name) : undefined;
}

function addressOf(display: string): ControlAddress {
  const abstract = display.startsWith('@');
  return { path: abstract ? display.slice(1) : display, abstract, display };
}

/**
 * Names of the listening SEQPACKET Unix sockets of this network namespace,
 * '@name' for abstract ones, spelled as bound: they match our names because
 * socketPath is made absolute (resolveOptions) before any generation binds
 * it. Only SEQPACKET, as ours are: a stream socket can bind the same
 * abstract name without taking ours.
 */
export function listeningUnixSockets(): Set<string> {
  return new Set(listeningUnixSocketsByInode().values());
}

/** The same names by socket inode, as /proc/<pid>/fd shows a process's sockets (socket:[inode]). */
export function listeningUnixSocketsByInode(): Map<number, string> {
  const names = new Map<number, string>();
  const SO_ACCEPTCON = 0x10000;
  const SOCK_SEQPACKET = 5;
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && (parseInt(fields[3], 16) & SO_ACCEPTCON) !== 0 && parseInt(fields[4], 16) === SOCK_SEQPACKET) {
      names.set(Number(fields[6]), fields.slice(7).join(' '));
    }
  }
  return names;
}

/**
 * The epochs of base id `baseId` that are listening right now, as our uid:
 * a name another user squats (abstract names have no permissions) is not a
 * generation of ours and does not keep epoch 0 from starting.
 */
export function liveEpochs(socketPath: string, baseId: number): number[] {
  const prefix = `${socketPath}_${baseId}_`;
  return [...listeningUnixSockets()]
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
    .map((name) => Number(name.slice(prefix.length)))
    .filter((epoch) => !heldByAnotherUid(controlAddress(socketPath, baseId, epoch)));
}

/**
 * The smallest base id with no live generation (Envoy's --use-dynamic-base-id).
 * Unlike liveEpochs, any socket makes a base id taken, whoever holds it: a
 * name squatted by another user is one we could not bind.
 */
export function freeBaseId(socketPath: string, limit = 10_000): number {
  const live = listeningUnixSockets();
  for (let id = 0; id < limit; id++) {
    const prefix = `${socketPath}_${id}_`;
    if (![...live].some((name) => name.startsWith(prefix))) return id;
  }
  throw new BatonError(ErrorCodes.BASE_ID_IN_USE, `no free base id below ${limit} for socket path ${socketPath}`);
}

/**
 * Who listens at `address`: the pid and uid that called listen(), from
 * SO_PEERCRED on a probe connection (closed at once); undefined when nobody
 * answers. The listener sees a peer connect and go.
 */
export function holder(address: ControlAddress): Credentials | undefined {
  let fd: number;
  try {
    fd = native.unixConnect(address.path, address.abstract);
  } catch {
    return undefined;
  }
  try {
    return native.peerCredentials(fd);
  } finally {
    native.close(fd);
  }
}

/** A filesystem socket's owner is its file's; an abstract name's is asked (a busy listener counts as ours). */
function heldByAnotherUid(address: ControlAddress): boolean {
  const uid = address.abstract ? holder(address)?.uid : lstatSync(address.path, { throwIfNoEntry: false })?.uid;
  return uid !== undefined && uid !== process.getuid!();
}

/**
 * Removes a filesystem socket left by a generation that died without cleaning
 * up: one that refuses connections. Only ever a socket: any other file there
 * is a BASE_ID_IN_USE naming it. A live socket stays, for bind() to report.
 */
export function removeIfStale(address: ControlAddress): void {
  if (address.abstract) return;
  const stats = lstatSync(address.path, { throwIfNoEntry: false });
  if (!stats) return;
  if (!stats.isSocket()) {
    throw new BatonError(
      ErrorCodes.BASE_ID_IN_USE,
      `control socket path ${address.path} is taken by a file that is not a socket; baton does not delete it: ` +
        'remove it yourself, or give this instance another --socket-path or --base-id',
    );
  }
  try {
    // A Unix connect completes or fails at once, so this probe never blocks.
    native.close(native.unixConnect(address.path, false));
    return;
  } catch (error) {
    // Only a refusal proves nobody listens; a full backlog (EAGAIN) or another type of socket is someone's.
    if (!isSystemError(error, 'ECONNREFUSED')) return;
  }
  unlinkSync(address.path);
}

/** Connects to the parent's control socket; no parent there is a clear NO_PARENT error. */
export function connectControl(address: ControlAddress, epoch: number, parentEpoch: number): number {
  try {
    return native.unixConnect(address.path, address.abstract);
  } catch (error) {
    if (isSystemError(error, 'ENOENT') || isSystemError(error, 'ECONNREFUSED')) {
      throw new BatonError(
        ErrorCodes.NO_PARENT,
        `restart epoch ${epoch} found no parent at ${address.display}: is epoch ${parentEpoch} running with the ` +
          'same --base-id and --socket-path? Start the first generation with --restart-epoch 0.',
        { cause: error },
      );
    }
    throw error;
  }
}
