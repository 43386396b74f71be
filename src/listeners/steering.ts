// Classic BPF programs that move traffic without dropping what is queued.
// The kernel keeps a SO_REUSEPORT group's sockets in the order they started
// listening (a socket that leaves is replaced by the last one), so a program
// that returns an index picks a socket by position; generations keep that
// order equal to worker order. Built here, attached by the addon.

// linux/filter.h
const LD = 0x00, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07;
const W = 0x00, B = 0x10, ABS = 0x20;
const K = 0x00, X = 0x08, A = 0x10;
const RSH = 0x70, XOR = 0xa0, MUL = 0x20, MOD = 0x90, AND = 0x50;
const JA = 0x00, JEQ = 0x10;
const TAX = 0x00;
/** Loads relative to the network header (SKF_NET_OFF): the program runs past the transport header. */
const NET = -0x100000;

type Instruction = [code: number, jt: number, jf: number, k: number];

const flat = (program: Instruction[]): number[] => program.flatMap(([code, jt, jf, k]) => [code, jt, jf, k >>> 0]);

/**
 * A reuseport program that sends every new connection (TCP SYN) or datagram
 * to one of the first `sockets` sockets of the group, by a hash of source
 * address and ports: stable per flow (a UDP peer keeps its socket), spread
 * evenly. Assumes IPv4 headers without options; any other header only
 * changes the hash, never the range.
 */
export function steerToFirst(sockets: number): number[] {
  return flat([
    [LD | B | ABS, 0, 0, NET], //          A = first byte of the IP header
    [ALU | RSH | K, 0, 0, 4], //           A = IP version
    [JMP | JEQ | K, 4, 0, 6], //           IPv6: skip to 7
    [LD | W | ABS, 0, 0, NET + 12], //     IPv4 source address
    [MISC | TAX, 0, 0, 0],
    [LD | W | ABS, 0, 0, NET + 20], //     source port << 16 | destination port
    [JMP | JA, 0, 0, 3], //                to the mix at 10
    [LD | W | ABS, 0, 0, NET + 20], //     7: IPv6 source address, last word
    [MISC | TAX, 0, 0, 0],
    [LD | W | ABS, 0, 0, NET + 40], //     ports
    [ALU | XOR | X, 0, 0, 0], //           10: h = ports ^ address
    [MISC | TAX, 0, 0, 0],
    [ALU | RSH | K, 0, 0, 16],
    [ALU | XOR | X, 0, 0, 0], //           fold the source port into the low bits (it is even for connect())
    [ALU | MUL | K, 0, 0, 0x9e3779b1], //  spread every bit upwards
    [ALU | RSH | K, 0, 0, 16],
    [ALU | MOD | K, 0, 0, sockets],
    [RET | A, 0, 0, 0],
  ]);
}

/** A reuseport program that sends everything to the socket at `position`: tests read the group's order with it. */
export function steerTo(position: number): number[] {
  return flat([[RET | K, 0, 0, position]]);
}

/**
 * A socket filter for a TCP listener that is going away: new handshakes
 * (a SYN without ACK) are dropped, so the client retries and then finds the
 * port closed, while handshakes already under way complete and are accepted.
 * The filter sees the TCP header at offset 0.
 */
export function refuseNewHandshakes(): number[] {
  return flat([
    [LD | B | ABS, 0, 0, 13], //          TCP flags
    [ALU | AND | K, 0, 0, 0x12], //       SYN | ACK
    [JMP | JEQ | K, 0, 1, 0x02], //       a bare SYN: drop
    [RET | K, 0, 0, 0],
    [RET | K, 0, 0, 0xffffffff],
  ]);
}
