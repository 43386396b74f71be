// Loads the addon (build/Release, else the prebuild for this platform, arch
// and libc: src/prebuild.ts) and checks every argument before it reaches
// native code, so a mistake is a BATON_INVALID_ARGUMENT naming the argument,
// never a crash or a wrong fd.

import { isIP } from 'node:net';
import { constants } from 'node:os';
import { BatonError, ErrorCodes, invalidArgument, isSystemError, type SystemError } from './errors';
import { integerIn } from './validate';
import type { BpfTarget, Family, NativeBinding } from './native';
import { libc, PLATFORM_ARCH, prebuildFile } from './prebuild';

export type { BpfTarget, Credentials, Family, PollHandle, ReceivedMessage, SocketInfo } from './native';

if (process.platform !== 'linux') {
  throw new BatonError(
    ErrorCodes.UNSUPPORTED_PLATFORM,
    `baton runs on Linux only (SO_REUSEPORT groups, SCM_RIGHTS, reuseport BPF); this is ${process.platform}`,
  );
}

function load(): NativeBinding {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('bindings')({
      bindings: 'baton.node',
      platformArch: PLATFORM_ARCH,
      // Read only if build/Release has no addon: asking Node for the libc takes a few ms.
      get prebuild() {
        return prebuildFile(libc());
      },
      try: [
        ['module_root', 'build', 'Release', 'bindings'],
        ['module_root', 'prebuilds', 'platformArch', 'prebuild'],
      ],
    }) as NativeBinding;
  } catch (error) {
    throw new BatonError(
      ErrorCodes.ADDON_NOT_FOUND,
      `baton's native addon could not be loaded on ${PLATFORM_ARCH} with ${libc()}: this package has no prebuild for it that loads, and ` +
        'none was built from source. Install python3, make and g++ (apt-get install python3 make g++; on Alpine, apk add python3 ' +
        `make g++), then run \`npm rebuild baton\`. ${(error as Error).message}`,
      { cause: error },
    );
  }
}

const native = load();
// An addon built from older sources (a stale build/) would leave the fd limit undefined, and every check against it
// passing, or lack the newest functions (sendWhole, connectToSelf) until the first call.
if (typeof native.SCM_MAX_FD !== 'number' || typeof native.sendWhole !== 'function' || typeof native.connectToSelf !== 'function') {
  throw new BatonError(ErrorCodes.ADDON_NOT_FOUND, "baton's native addon is older than its JavaScript: run `npm rebuild baton` (or `npx node-gyp rebuild`)");
}

const MAX_FD = 2 ** 31 - 1;
/** The kernel's limit of fds on one sendmsg(), as the addon was built with. */
export const SCM_MAX_FD = native.SCM_MAX_FD;
/** sizeof(sockaddr_un.sun_path) less the NUL (path) or the leading NUL (abstract). */
export const MAX_UNIX_PATH = 107;

const fd = (value: unknown, name = 'fd') => integerIn(value, name, 0, MAX_FD);
const port = (value: unknown) => integerIn(value, 'port', 0, 65535);
const backlog = (value: unknown) => integerIn(value, 'backlog', 1, 65535);

function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgument(`${name} must be a boolean`);
  return value;
}

function host(family: unknown, value: unknown): void {
  if (family !== 4 && family !== 6) throw invalidArgument(`family must be 4 or 6, got ${String(family)}`);
  if (typeof value !== 'string' || isIP(value) !== family) {
    throw invalidArgument(`host must be an IPv${family} address, got ${JSON.stringify(value)}`);
  }
}

function unixPath(path: unknown, abstract: unknown): void {
  boolean(abstract, 'abstract');
  if (typeof path !== 'string' || path.length === 0 || Buffer.byteLength(path) > MAX_UNIX_PATH || path.includes('\0')) {
    throw invalidArgument(`path must be 1..${MAX_UNIX_PATH} bytes without NUL, got ${JSON.stringify(path)}`);
  }
}

function fdList(fds: unknown): number[] {
  if (!Array.isArray(fds) || fds.length > SCM_MAX_FD) throw invalidArgument(`fds must be an array of at most ${SCM_MAX_FD} fds`);
  for (let i = 0; i < fds.length; i++) fd(fds[i], `fds[${i}]`); // a loop, not forEach: holes are checked too
  return fds;
}

export function tcpBind(family: Family, address: string, p: number, v6only: boolean): number {
  host(family, address);
  return native.tcpBind(family, address, port(p), boolean(v6only, 'v6only'));
}

export function tcpListen(family: Family, address: string, p: number, v6only: boolean, b: number): number {
  backlog(b);
  const f = tcpBind(family, address, p, v6only);
  try {
    native.listen(f, b);
  } catch (error) {
    native.close(f);
    throw error;
  }
  return f;
}

export function udpBind(family: Family, address: string, p: number, v6only: boolean): number {
  host(family, address);
  return native.udpBind(family, address, port(p), boolean(v6only, 'v6only'));
}

export function listen(f: number, b: number): void {
  native.listen(fd(f), backlog(b));
}

/** A UDP socket about to close: connected to its own address, it takes no more datagrams from anyone (see native/listener.cc). */
export function connectToSelf(f: number): void {
  native.connectToSelf(fd(f));
}

export function shutdown(f: number): void {
  native.shutdown(fd(f));
}

/** The kernel's limit on a classic BPF program (BPF_MAXINSNS). */
const MAX_BPF_INSTRUCTIONS = 4096;

function bpfTarget(target: unknown): BpfTarget {
  if (target !== 'reuseport' && target !== 'socket') throw invalidArgument(`target must be 'reuseport' or 'socket', got ${String(target)}`);
  return target;
}

export function attachBpf(f: number, target: BpfTarget, program: number[]): void {
  if (!Array.isArray(program) || program.length === 0 || program.length % 4 !== 0 || program.length / 4 > MAX_BPF_INSTRUCTIONS) {
    throw invalidArgument(`program must be 1..${MAX_BPF_INSTRUCTIONS} instructions of [code, jt, jf, k]`);
  }
  for (let i = 0; i < program.length; i++) integerIn(program[i], `program[${i}]`, 0, [0xffff, 0xff, 0xff, 0xffffffff][i % 4]);
  native.attachBpf(fd(f), bpfTarget(target), program);
}

export function detachBpf(f: number, target: BpfTarget): void {
  native.detachBpf(fd(f), bpfTarget(target));
}

export function dup(f: number): number {
  return native.dup(fd(f));
}

export function close(f: number): void {
  native.close(fd(f));
}

export function socketInfo(f: number) {
  return native.socketInfo(fd(f));
}

export function unixListen(path: string, abstract: boolean, mode: number, b: number): number {
  unixPath(path, abstract);
  const m = integerIn(mode, 'mode', 0, 0o777);
  return namingPath(path, abstract, () => native.unixListen(path, abstract, m, backlog(b)));
}

export function unixConnect(path: string, abstract: boolean): number {
  unixPath(path, abstract);
  return namingPath(path, abstract, () => native.unixConnect(path, abstract));
}

/** A failing syscall's error names the socket it was about, as Node's fs errors name their file (`path` too). */
function namingPath<T>(path: string, abstract: boolean, call: () => T): T {
  try {
    return call();
  } catch (error) {
    if (isSystemError(error)) {
      const display = abstract ? `@${path}` : path;
      error.message = `${error.message}, '${display}'`;
      (error as SystemError & { path?: string }).path = display;
    }
    throw error;
  }
}

export function accept(f: number): number {
  return native.accept(fd(f));
}

export function peerCredentials(f: number) {
  return native.peerCredentials(fd(f));
}

export function sendMessage(f: number, data: Buffer, fds: number[]): boolean {
  if (!Buffer.isBuffer(data)) throw invalidArgument('data must be a Buffer');
  return native.sendMessage(fd(f), data, fdList(fds));
}

export function receiveMessage(f: number, maxBytes: number, maxFds: number) {
  return native.receiveMessage(fd(f), integerIn(maxBytes, 'maxBytes', 1, 16 * 1024 * 1024), integerIn(maxFds, 'maxFds', 0, SCM_MAX_FD));
}

export function sendDatagram(path: string, abstract: boolean, data: Buffer): boolean {
  unixPath(path, abstract);
  if (!Buffer.isBuffer(data)) throw invalidArgument('data must be a Buffer');
  return native.sendDatagram(path, abstract, data);
}

function strings(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw invalidArgument(`${name} must be an array of strings`);
  for (let i = 0; i < value.length; i++) {
    if (typeof value[i] !== 'string' || value[i].includes('\0')) throw invalidArgument(`${name}[${i}] must be a string without NUL`);
  }
  return value;
}

/**
 * Replaces this process's image; returns only by throwing. The addon's, not
 * Node's process.execve (>= 23.11): Node's printed the error and aborted when
 * execve(2) failed until nodejs/node#62878, and a failed upgrade must leave
 * the supervisor running.
 */
export function execve(path: string, argv: string[], env: Record<string, string>): never {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) throw invalidArgument(`path must be a non-empty string without NUL, got ${JSON.stringify(path)}`);
  const entries = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return native.execve(path, strings(argv, 'argv'), strings(entries, 'env'));
}

const pid = (value: unknown) => integerIn(value, 'pid', 1, 2 ** 22);

export function pidfdOpen(p: number): number {
  return native.pidfdOpen(pid(p));
}

/** A reaped process's exit as ChildProcess 'exit' gives it; null while it runs. */
export function waitpid(p: number): { code: number | null; signal: NodeJS.Signals | null } | null {
  const status = native.waitpid(pid(p));
  if (!status) return null;
  const signal = status.signal === null ? null : ((Object.keys(constants.signals) as NodeJS.Signals[]).find((name) => constants.signals[name] === status.signal) ?? null);
  return { code: status.code, signal };
}

export function setCloexec(f: number, on: boolean): boolean {
  return native.setCloexec(fd(f), boolean(on, 'on'));
}

/** The longest `data` sendWhole takes: a frame, not a stream (a socket's send buffer is never smaller). */
const MAX_WHOLE_BYTES = 4096;

export function sendWhole(f: number, data: Buffer): boolean {
  if (!Buffer.isBuffer(data) || data.length === 0 || data.length > MAX_WHOLE_BYTES) throw invalidArgument(`data must be a Buffer of 1..${MAX_WHOLE_BYTES} bytes`);
  return native.sendWhole(fd(f), data);
}

export const Poll: NativeBinding['Poll'] = class {
  constructor(f: number, callback: (error: Error | null, readable: boolean, writable: boolean, disconnect: boolean) => void) {
    if (typeof callback !== 'function') throw invalidArgument('callback must be a function');
    return new native.Poll(fd(f), callback);
  }
} as unknown as NativeBinding['Poll'];

export function openHandles(): number {
  return native.openHandles();
}
