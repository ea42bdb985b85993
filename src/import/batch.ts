import { tooLarge } from "./pending";

/** One request's worth of records, with where each came from in the file. */
export interface Batch {
  body: Uint8Array;
  /** The header row and its line break (CSV), at the start of the body; empty otherwise. */
  headerLength: number;
  /** Where each record starts in the body. */
  offsets: number[];
  /** The file line each record starts on, in body order: `rejected[].index` maps through it. */
  lines: number[];
  /** 0 for the file as first opened, n after its n-th rotation or truncation. */
  generation: number;
  /** Hands the body's buffer back for a later batch, once the gateway has answered. */
  release?: () => void;
}

const NEWLINE = new Uint8Array([10]);
const copy = Buffer.prototype.copy;

/** The records from `from` to `to` (exclusive) of a batch, as a batch of their own. */
export function sliceBatch(batch: Batch, from: number, to: number): Batch {
  const start = batch.offsets[from] as number;
  const end = to < batch.offsets.length ? (batch.offsets[to] as number) : batch.body.length;
  const header = batch.body.subarray(0, batch.headerLength);
  const body = Buffer.concat([header, batch.body.subarray(start, end)]);
  const shift = batch.headerLength - start;
  return {
    body,
    headerLength: batch.headerLength,
    offsets: batch.offsets.slice(from, to).map((offset) => offset + shift),
    lines: batch.lines.slice(from, to),
    generation: batch.generation,
  };
}

/**
 * Gathers records into batches of at most `maxRecords` records and `maxBytes` bytes of body (the CSV header
 * included, since every batch repeats it). Records are copied in, so the reader's buffers can be reused.
 */
const POOLED = 16;

export class Batcher {
  private buffer: Uint8Array = new Uint8Array(0);
  private length = 0;
  private header: Uint8Array = new Uint8Array(0);
  private offsets: number[] = [];
  private lines: number[] = [];
  /** When the batch in hand got its first record (performance.now()). */
  startedAt = 0;
  generation = 0;

  constructor(
    private readonly options: {
      maxRecords: number;
      maxBytes: number;
      onBatch: (batch: Batch) => void;
      onRefuse: (line: number, message: string) => void;
    },
  ) {}

  get count() {
    return this.lines.length;
  }

  /** A new CSV header: the batch in hand, made with the previous one, goes first. */
  setHeader(bytes: Uint8Array) {
    this.flush();
    this.header = Buffer.concat([bytes, NEWLINE]);
  }

  /** The next file after a rotation: its own header, its own line numbers. */
  nextGeneration() {
    this.flush();
    this.header = new Uint8Array(0);
    this.generation++;
  }

  /** Adds a record; false when it could never fit in a request (it is refused). */
  add(bytes: Uint8Array, start: number, end: number, line: number): boolean {
    const { maxBytes, maxRecords } = this.options;
    const size = end - start + 1;
    if (this.header.length + size > maxBytes) {
      this.options.onRefuse(line, tooLarge(this.header.length + size, maxBytes));
      return false;
    }
    if (this.lines.length > 0 && this.length + size > maxBytes) this.flush();
    if (this.lines.length === 0) {
      this.startedAt = performance.now();
      this.buffer = this.pool.pop() ?? this.buffer;
      this.length = 0;
      this.reserve(this.header.length + size);
      this.buffer.set(this.header, 0);
      this.length = this.header.length;
    } else this.reserve(this.length + size);
    this.offsets.push(this.length);
    this.lines.push(line);
    // Buffer#copy copies a range without a subarray object per record.
    copy.call(bytes, this.buffer, this.length, start, end);
    this.buffer[this.length + size - 1] = 10;
    this.length += size;
    if (this.lines.length >= maxRecords) this.flush();
    return true;
  }

  flush() {
    if (this.lines.length === 0) return;
    const buffer = this.buffer;
    const batch: Batch = {
      body: buffer.subarray(0, this.length),
      headerLength: this.header.length,
      offsets: this.offsets,
      lines: this.lines,
      generation: this.generation,
      release: () => {
        if (this.pool.length < POOLED) this.pool.push(buffer);
      },
    };
    this.buffer = new Uint8Array(0);
    this.offsets = [];
    this.lines = [];
    this.lastLength = this.length;
    this.length = 0;
    this.options.onBatch(batch);
  }

  /** Buffers of answered batches, reused: a long import allocates a few, not one per batch. */
  private pool: Uint8Array[] = [];
  private lastLength = 64 * 1024;

  private reserve(size: number) {
    if (size <= this.buffer.length) return;
    let capacity = Math.max(this.buffer.length * 2, Math.min(this.lastLength, this.options.maxBytes), 4096);
    while (capacity < size) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, Math.max(size, this.options.maxBytes)));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }
}
