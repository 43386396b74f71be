// One error class for everything baton decides is wrong, with stable codes a
// caller can switch on. Failing syscalls keep Node's SystemError shape
// (code = errno name, errno, syscall) and are wrapped only where baton adds
// what to do about them.

export const ErrorCodes = {
  /** An argument failed validation before reaching native code. */
  INVALID_ARGUMENT: 'BATON_INVALID_ARGUMENT',
  /** The platform is not Linux. */
  UNSUPPORTED_PLATFORM: 'BATON_UNSUPPORTED_PLATFORM',
  /** The native addon could not be loaded. */
  ADDON_NOT_FOUND: 'BATON_ADDON_NOT_FOUND',
  /** A control message was malformed, oversized or of an unknown type. */
  PROTOCOL: 'BATON_PROTOCOL',
  /** Peer speaks another protocol or hot-restart version. */
  VERSION_MISMATCH: 'BATON_VERSION_MISMATCH',
  /** Peer runs as another uid. */
  PEER_REFUSED: 'BATON_PEER_REFUSED',
  /** The parent refused this child (busy with another child, draining...). */
  PARENT_BUSY: 'BATON_PARENT_BUSY',
  /** A wait ran past its deadline. */
  TIMEOUT: 'BATON_TIMEOUT',
  /** The control channel closed while something was still expected from it. */
  CHANNEL_CLOSED: 'BATON_CHANNEL_CLOSED',
  /** No parent was found at the socket path for a restart epoch > 0. */
  NO_PARENT: 'BATON_NO_PARENT',
  /** The control socket path (base id) is already taken: by another instance, or by a file that is not a socket. */
  BASE_ID_IN_USE: 'BATON_BASE_ID_IN_USE',
  /** An operation was called in a state that does not allow it. */
  INVALID_STATE: 'BATON_INVALID_STATE',
  /** A worker thread failed to start or serve. */
  WORKER: 'BATON_WORKER',
  /** A fixed-size table or pool (a thread's stats, a stats snapshot, the process's fds, socket memory) is full. */
  CAPACITY: 'BATON_CAPACITY',
  /** A signal (SIGTERM, SIGINT) stopped a generation before it took over; its parent serves on. */
  STOPPED: 'BATON_STOPPED',
  /** The application's own code failed (an error that carries no code of its own). */
  APPLICATION: 'BATON_APPLICATION',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class BatonError extends Error {
  override name = 'BatonError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const knownCodes = new Set<string>(Object.values(ErrorCodes));

/** A code received from a peer, kept if it is one of ours. */
export function errorCodeOf(code: string): ErrorCode {
  return knownCodes.has(code) ? (code as ErrorCode) : ErrorCodes.PROTOCOL;
}

export function invalidArgument(message: string): BatonError {
  return new BatonError(ErrorCodes.INVALID_ARGUMENT, message);
}

/** A Node-style system error (from the addon or from node itself). */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isSystemError(error: unknown, code?: string): error is SystemError {
  return (
    error instanceof Error &&
    typeof (error as SystemError).syscall === 'string' &&
    (code === undefined || (error as SystemError).code === code)
  );
}
