// The native surface, as the addon (native/*.cc) exports it. Each function is
// one or a few syscalls and takes arguments already validated by TypeScript
// (src/binding.ts); a failing syscall throws a SystemError shaped like Node's
// own: { message: "<syscall> <CODE>: <strerror>", code: "EADDRINUSE",
// errno: -98, syscall: "bind" }. Every fd the addon creates or receives is
// non-blocking and CLOEXEC, and belongs to the caller.

export type Family = 4 | 6;

export interface SocketInfo {
  /** 4, 6 or 'unix' (SO_DOMAIN). */
  family: Family | 'unix';
  /** SO_TYPE. */
  type: 'stream' | 'dgram' | 'seqpacket';
  /** getsockname(); '' for an unbound or unnamed socket. */
  address: string;
  port: number;
  /** SO_ACCEPTCONN. */
  listening: boolean;
  /** SO_REUSEPORT. */
  reusePort: boolean;
  /** TCP listeners only (TCP_INFO tcpi_unacked / tcpi_sacked); 0 otherwise. */
  acceptQueue: number;
  backlog: number;
  /** Bytes waiting to be read (SO_MEMINFO rmem_alloc): a UDP socket's queued datagrams. */
  receiveQueueBytes: number;
}

/** Where a classic BPF program goes: the SO_REUSEPORT group's selector, or one socket's own filter. */
export type BpfTarget = 'reuseport' | 'socket';

export interface Credentials {
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedMessage {
  /** The bytes of one SEQPACKET record; empty at EOF, and for an empty record. */
  data: Buffer;
  /** Fds that came with it (SCM_RIGHTS), already CLOEXEC (MSG_CMSG_CLOEXEC). */
  fds: number[];
  /** MSG_TRUNC: the record was longer than maxBytes and was cut. */
  truncated: boolean;
  /** MSG_CTRUNC: more fds were sent than fit; the kernel closed the rest. The
   * control buffer is CMSG_SPACE(maxFds * 4), padded to 8 bytes, so with an odd
   * maxFds one fd more than maxFds can arrive: close every fd in `fds`. */
  controlTruncated: boolean;
  /** The peer closed and nothing is left to read (poll POLLRDHUP + ioctl SIOCINQ,
   * checked only after a read of 0 bytes and no fds); false for an empty record. */
  eof: boolean;
}

export interface PollHandle {
  /** (Re)arm with the events to watch; the callback gets UV_* readiness bits. */
  start(readable: boolean, writable: boolean): void;
  stop(): void;
  /** Stops and releases the libuv handle; the fd itself stays open. Idempotent. */
  close(): void;
}

export interface NativeBinding {
  /** socket(SOCK_STREAM) + SO_REUSEADDR + SO_REUSEPORT (+ IPV6_V6ONLY) + bind: not listening yet. */
  tcpBind(family: Family, host: string, port: number, v6only: boolean): number;
  /** socket(SOCK_DGRAM) + SO_REUSEADDR + SO_REUSEPORT (+ IPV6_V6ONLY) + bind. */
  udpBind(family: Family, host: string, port: number, v6only: boolean): number;
  /** getsockname + connect to that address: a UDP socket about to close takes no more datagrams (see listener.cc). */
  connectToSelf(fd: number): void;
  /** listen(fd, backlog): starts listening, or changes the backlog of a listener. */
  listen(fd: number, backlog: number): void;
  /** shutdown(SHUT_RDWR): a TCP listener leaves its group and its queue is reset, whoever holds the socket. */
  shutdown(fd: number): void;
  /** SO_ATTACH_REUSEPORT_CBPF or SO_ATTACH_FILTER; `program` is [code, jt, jf, k] per instruction, flat. */
  attachBpf(fd: number, target: BpfTarget, program: number[]): void;
  /** SO_DETACH_REUSEPORT_BPF or SO_DETACH_FILTER; ENOENT when none is attached. */
  detachBpf(fd: number, target: BpfTarget): void;
  /** fcntl(F_DUPFD_CLOEXEC). */
  dup(fd: number): number;
  close(fd: number): void;
  socketInfo(fd: number): SocketInfo;

  /** A SOCK_SEQPACKET Unix listener; abstract = leading NUL, no filesystem
   * entry. For a path, chmod(path, mode) happens between bind and listen, so
   * no peer can connect before the mode is set. */
  unixListen(path: string, abstract: boolean, mode: number, backlog: number): number;
  /** A connected SOCK_SEQPACKET Unix socket. */
  unixConnect(path: string, abstract: boolean): number;
  /** accept4(SOCK_NONBLOCK | SOCK_CLOEXEC); -1 when no connection is waiting. */
  accept(fd: number): number;
  /** SO_PEERCRED. */
  peerCredentials(fd: number): Credentials;
  /** One record with fds (at most SCM_MAX_FD) as SCM_RIGHTS; MSG_DONTWAIT | MSG_NOSIGNAL.
   * Returns false (nothing sent) when the socket buffer is full (EAGAIN). */
  sendMessage(fd: number, data: Buffer, fds: number[]): boolean;
  /** One record, MSG_DONTWAIT | MSG_CMSG_CLOEXEC; null when none is waiting, `eof` set when the peer closed. */
  receiveMessage(fd: number, maxBytes: number, maxFds: number): ReceivedMessage | null;

  /** One SOCK_DGRAM datagram to a Unix socket (abstract = leading NUL), from a socket opened and closed for the call;
   * MSG_DONTWAIT | MSG_NOSIGNAL. Returns false (nothing sent) when the receiver's queue is full (EAGAIN). */
  sendDatagram(path: string, abstract: boolean, data: Buffer): boolean;

  /** execve(2): replaces this process's image; returns only by throwing. */
  execve(path: string, argv: string[], envp: string[]): never;
  /** pidfd_open(2), CLOEXEC: readable once the process exits (a zombie's too). */
  pidfdOpen(pid: number): number;
  /** waitpid(pid, WNOHANG): null while it runs; its exit code or signal number once reaped. */
  waitpid(pid: number): { code: number | null; signal: number | null } | null;
  /** fcntl(F_SETFD): whether `fd` is closed by the next exec; returns whether it was before. */
  setCloexec(fd: number, on: boolean): boolean;
  /** `data` onto a connected stream socket whole, with MSG_DONTWAIT | MSG_NOSIGNAL, and only when its send queue
   * is empty (ioctl SIOCOUTQ == 0). Returns false (nothing sent) when the queue is not empty or the send would block. */
  sendWhole(fd: number, data: Buffer): boolean;

  /** uv_poll on fd, on this thread's loop. callback(error, readable, writable, disconnect). */
  Poll: new (
    fd: number,
    callback: (error: Error | null, readable: boolean, writable: boolean, disconnect: boolean) => void,
  ) => PollHandle;

  /** 253: the kernel refuses more fds in one message (include/net/scm.h). */
  readonly SCM_MAX_FD: number;

  /** Number of libuv handles this environment (thread) holds open; for tests. */
  openHandles(): number;
}
