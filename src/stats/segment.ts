// One thread's stats in a SharedArrayBuffer: a directory of what it defined
// (append-only JSON entries) and a Float64Array of values. Exactly one thread
// writes a segment; the main thread reads it whenever it collects, without a
// message or a lock: an entry is published by an atomic increment of the
// entry count after its bytes are in place (its slots are new, so still 0).
// Values are plain aligned 8-byte stores from their single writer, which the
// 64-bit platforms baton runs on do not tear.

import { BatonError, ErrorCodes, invalidArgument } from '../errors';
import { integerIn } from '../validate';
import { slotsOf, type MetricDefinition } from './definition';

export interface SegmentCapacity {
  /** Value slots: one per counter or gauge series, buckets + 2 per histogram series. Default 16384. */
  slots?: number;
  /** Bytes for the directory of definitions and series. Default 256 KiB. */
  directoryBytes?: number;
}

/** A series as the reader sees it: its definition, label values and first value slot. */
export interface SegmentSeries {
  definition: MetricDefinition;
  labels: readonly string[];
  slot: number;
}

type Entry = { d: MetricDefinition } | { m: number; l: readonly string[]; s: number };

const MAGIC = 0x62746e31; // 'btn1'
const enum Header {
  Magic,
  Entries,
  DirectoryUsed,
  SlotsUsed,
  Claimed,
  Slots,
  DirectoryBytes,
  Length,
}
const HEADER_BYTES = Header.Length * 4;
const LENGTH_PREFIX = 4;

export class Segment {
  readonly values: Float64Array;
  private readonly header: Int32Array;
  private readonly directory: Buffer;
  /** Writer side: what this thread defined, by id. */
  private readonly defined: MetricDefinition[] = [];
  // Reader side: what has been parsed so far.
  private readonly readDefinitions: MetricDefinition[] = [];
  private readonly readSeries: SegmentSeries[] = [];
  private readEntries = 0;
  private readOffset = 0;

  private constructor(readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, Header.Length);
    if (this.header[Header.Magic] !== MAGIC) throw invalidArgument('not a baton stats buffer');
    const directoryBytes = this.header[Header.DirectoryBytes]!;
    this.directory = Buffer.from(buffer, HEADER_BYTES, directoryBytes);
    this.values = new Float64Array(buffer, align8(HEADER_BYTES + directoryBytes), this.header[Header.Slots]!);
  }

  static create(capacity: SegmentCapacity = {}): Segment {
    const slots = integerIn(capacity.slots ?? 16_384, 'capacity.slots', 1, 2 ** 28);
    const directoryBytes = integerIn(capacity.directoryBytes ?? 256 * 1024, 'capacity.directoryBytes', 1, 2 ** 28);
    const buffer = new SharedArrayBuffer(align8(HEADER_BYTES + directoryBytes) + slots * 8);
    const header = new Int32Array(buffer, 0, Header.Length);
    header[Header.Slots] = slots;
    header[Header.DirectoryBytes] = directoryBytes;
    Atomics.store(header, Header.Magic, MAGIC);
    return new Segment(buffer);
  }

  static attach(buffer: unknown): Segment {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES) throw invalidArgument('not a baton stats buffer');
    return new Segment(buffer);
  }

  /** Makes the calling thread the segment's only writer; false if one already is. */
  claim(): boolean {
    return Atomics.compareExchange(this.header, Header.Claimed, 0, 1) === 0;
  }

  // Writer side.

  /** Publishes a definition; returns its id for addSeries. */
  define(definition: MetricDefinition): number {
    this.append({ d: definition });
    return this.defined.push(definition) - 1;
  }

  /** Publishes a series of a defined metric; returns its first value slot. */
  addSeries(id: number, labels: readonly string[]): number {
    const definition = this.defined[id]!;
    const slot = this.header[Header.SlotsUsed]!;
    const slots = slotsOf(definition);
    if (slot + slots > this.values.length) {
      throw new BatonError(ErrorCodes.CAPACITY, `stats are full: ${definition.name} needs ${slots} value slots, ${this.values.length - slot} are left (raise capacity.slots, or use fewer label values)`);
    }
    this.header[Header.SlotsUsed] = slot + slots;
    this.append({ m: id, l: labels, s: slot });
    return slot;
  }

  private append(entry: Entry): void {
    const bytes = Buffer.from(JSON.stringify(entry));
    const at = this.header[Header.DirectoryUsed]!;
    if (at + LENGTH_PREFIX + bytes.length > this.directory.length) {
      throw new BatonError(ErrorCodes.CAPACITY, `stats directory is full (${this.directory.length} bytes): raise capacity.directoryBytes, or use fewer metrics and label values`);
    }
    this.directory.writeUInt32LE(bytes.length, at);
    bytes.copy(this.directory, at + LENGTH_PREFIX);
    this.header[Header.DirectoryUsed] = at + LENGTH_PREFIX + bytes.length;
    Atomics.add(this.header, Header.Entries, 1); // publishes the entry and everything written before it
  }

  // Reader side.

  /** Every definition and series published so far, in the order they were published. */
  read(): { definitions: readonly MetricDefinition[]; series: readonly SegmentSeries[] } {
    const published = Atomics.load(this.header, Header.Entries);
    for (; this.readEntries < published; this.readEntries++) {
      const length = this.directory.readUInt32LE(this.readOffset);
      const start = this.readOffset + LENGTH_PREFIX;
      const entry = JSON.parse(this.directory.toString('utf8', start, start + length)) as Entry;
      this.readOffset = start + length;
      if ('d' in entry) this.readDefinitions.push(entry.d);
      else this.readSeries.push({ definition: this.readDefinitions[entry.m]!, labels: entry.l, slot: entry.s });
    }
    return { definitions: this.readDefinitions, series: this.readSeries };
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
