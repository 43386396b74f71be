// A stand-in for systemd's notify socket: an AF_UNIX datagram socket (Node
// has none, python3 does) that prints every notification it receives as a
// JSON line, with the sender's pid (SCM_CREDENTIALS) and its own
// CLOCK_MONOTONIC at receipt.

import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { start, type Line, type Proc } from './processes';

const RECEIVER = `
import json, socket, struct, sys, time
address, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + address[1:] if address.startswith('@') else address)
now = lambda: time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
print(json.dumps({'listening': address, 'monotonicUsec': now()}), flush=True)
if mode == 'paused':
    time.sleep(3600)
while True:
    data, ancillary, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = [struct.unpack('3i', d[:12])[0] for level, kind, d in ancillary if kind == socket.SCM_CREDENTIALS]
    print(json.dumps({'notification': data.decode(), 'sender': pid[0] if pid else None, 'monotonicUsec': now()}), flush=True)
`;

export interface Notification {
  /** Each KEY=value line of the datagram. */
  fields: Record<string, string>;
  /** The datagram as sent. */
  text: string;
  /** The sender's pid. */
  pid: number;
  /** The receiver's CLOCK_MONOTONIC when it arrived. */
  monotonicUsec: number;
}

const isNotification = (l: Line) => typeof l.notification === 'string';

function parseNotification(l: Line): Notification {
  const text = String(l.notification);
  const fields = Object.fromEntries(text.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  return { fields, text, pid: Number(l.sender), monotonicUsec: Number(l.monotonicUsec) };
}

export class NotifyReceiver {
  constructor(
    /** The NOTIFY_SOCKET value: a path or @name. */
    readonly address: string,
    readonly proc: Proc,
  ) {}

  /** Every notification received so far, in order. */
  get notifications(): Notification[] {
    return this.proc.lines.filter(isNotification).map(parseNotification);
  }

  /** The first notification after the first `after` ones that matches, waiting for it for at most `ms`. */
  async waitFor(match: (n: Notification) => boolean, what: string, after = 0, ms = 15_000): Promise<Notification> {
    await this.proc.waitFor(() => this.notifications.slice(after).some(match), { timeoutMs: ms, what: `notification ${what}` });
    return this.notifications.slice(after).find(match)!;
  }
}

/**
 * A receiver bound to a path under tmpdir() (`kind` 'path') or to an abstract
 * name, fresh unless `name` is given; removed and stopped when the test ends.
 * A `paused` one never reads, so its queue fills.
 */
export async function notifyReceiver(t: TestContext, kind: 'path' | 'abstract', options: { paused?: boolean; name?: string } = {}): Promise<NotifyReceiver> {
  const name = options.name ?? `baton-notify-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const address = kind === 'path' ? join(tmpdir(), name) : `@${name}`;
  if (kind === 'path') t.after(() => rmSync(address, { force: true }));
  const proc = start(t, 'python3', ['-c', RECEIVER, address, options.paused ? 'paused' : 'read']);
  await proc.waitFor((l) => l.listening === address, { timeoutMs: 10_000, what: 'the notify receiver listening' });
  return new NotifyReceiver(address, proc);
}

/** A notification with this field (set to `value`, if given). */
export const has = (field: string, value?: string) => (n: Notification) => field in n.fields && (value === undefined || n.fields[field] === value);
