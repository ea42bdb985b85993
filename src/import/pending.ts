/** Where a splitter delivers what it finds in the file. Byte arrays are valid only during the call. */
export interface SplitSink {
  /** CSV only: the header row, without its line break. */
  header(bytes: Uint8Array): void;
  /**
   * One record, `bytes[start, end)`, without its line break; `line` is the file's physical line (from 1)
   * where it starts. A range rather than a subarray: no object per record.
   */
  record(bytes: Uint8Array, start: number, end: number, line: number): void;
  /** Something in the file that cannot be sent as a record, at the line where it starts. */
  refuse(line: number, message: string): void;
}

/** Cuts a byte stream into records, keeping its state between chunks. */
export interface Splitter {
  /** Bytes as they are read; the chunk may be reused by the caller once push returns. */
  push(chunk: Uint8Array): void;
  /** The end of the file (or of one file before rotation): the last record, even without a line break. */
  end(): void;
}

export const LF = 10;
export const CR = 13;
export const QUOTE = 34;
export const COMMA = 44;

/** How many bytes of a UTF-8 byte order mark `chunk` starts with, if it is the file's first chunk. */
export function bomLength(chunk: Uint8Array): number {
  return chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf ? 3 : 0;
}

/**
 * The part of a record read in earlier chunks, copied (the chunks are reused). It never holds more than
 * `limit` bytes: a record larger than a request may be is only measured, then refused.
 */
export class Pending {
  private pieces: Uint8Array[] = [];
  size = 0;

  constructor(private readonly limit: number) {}

  get oversized() {
    return this.size > this.limit;
  }

  add(bytes: Uint8Array, start: number, end: number) {
    if (end <= start) return;
    this.size += end - start;
    if (this.oversized) this.pieces = [];
    else this.pieces.push(new Uint8Array(bytes.subarray(start, end))); // a copy, even of a Buffer
  }

  /** The whole record, what was kept and `bytes[start, end)`; undefined when nothing was kept (use the range). */
  join(bytes: Uint8Array, start: number, end: number): Uint8Array | undefined {
    if (this.pieces.length === 0) return undefined;
    return Buffer.concat([...this.pieces, bytes.subarray(start, end)]);
  }

  reset() {
    this.pieces = [];
    this.size = 0;
  }
}

export function tooLarge(size: number, limit: number) {
  return `the record is ${size} bytes; a request may hold at most ${limit} (--max-bytes)`;
}
