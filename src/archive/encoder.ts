import type { Compression } from "./parquet";

/**
 * Parquet encoding off the archive's consumer thread, on a pool of threads: a file is encoded on one of them a
 * row group at a time, as its records come, while the consumer reads on. Records cross as the bytes Kafka
 * held them (one buffer a chunk, moved, not copied) and are parsed there again: cloning parsed records across
 * would cost about as much as encoding them.
 */

export type EncodeRequest =
  | {
      type: "add";
      id: number;
      /** The kind's name; none for dead letters. */
      kind?: string;
      compression: Compression;
      /** The records' JSON, one after another; record i ends at ends[i]. */
      bytes: Uint8Array;
      ends: Uint32Array;
    }
  | { type: "finish" | "drop"; id: number };

export type EncodeResponse = { id: number; file: Uint8Array } | { id: number; error: string };

/** One file's records as Kafka held them, kept until the file is complete, and how many went to its encoder. */
export class RecordBytes {
  private chunks: Uint8Array[] = [];
  private sent = 0;
  unsentBytes = 0;

  get count() {
    return this.chunks.length;
  }

  push(value: Uint8Array) {
    this.chunks.push(value);
    this.unsentBytes += value.length;
  }

  /** The records not sent yet, in one buffer, and where each ends. */
  takeUnsent() {
    const chunks = this.chunks.slice(this.sent);
    const bytes = new Uint8Array(this.unsentBytes);
    const ends = new Uint32Array(chunks.length);
    let at = 0;
    chunks.forEach((chunk, i) => {
      bytes.set(chunk, at);
      at += chunk.length;
      ends[i] = at;
    });
    this.sent = this.chunks.length;
    this.unsentBytes = 0;
    return { bytes, ends };
  }

  /** Every record is to be sent again (its encoder failed). */
  unsend() {
    this.sent = 0;
    this.unsentBytes = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  }
}

/** An hour's records of a partition, the offsets of the first and the last, and its file once it is open. */
export interface Bucket {
  records: RecordBytes;
  first: number;
  last: number;
  encoding?: Encoding;
}

/** Records sent to an encoder thread at a time, as one row group of their file. */
export const CHUNK_BYTES = 8 * 1024 * 1024;

/** A file being encoded on one thread. */
export interface Encoding {
  /** Sends the records not sent yet: they become the file's next row group. */
  add(records: RecordBytes): void;
  /** The complete file, once the records not sent yet are in it. */
  finish(records: RecordBytes): Promise<Uint8Array>;
  /** Forgets the file (its records are read again elsewhere). */
  drop(): void;
}

// Inside an executable built by scripts/build.sh, import.meta.url is the executable's, at the root of the
// embedded files, and the worker lies there under its source path.
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./src/archive/encode-worker.ts", import.meta.url)
  : new URL("./encode-worker.ts", import.meta.url);

type Call = { resolve: (file: Uint8Array) => void; reject: (error: Error) => void };
interface Thread {
  worker: Worker;
  /** Files open on it, and the finish of each that was asked for. */
  files: Map<number, Call | undefined>;
  dead?: Error;
}

/** What a pool that was closed opens: a file that fails at its finish. */
const stopped: Encoding = {
  add: () => {},
  finish: () => Promise.reject(new Error("the archive's encoders stopped")),
  drop: () => {},
};

export function createEncoderPool(threads: number) {
  const pool = new Set<Thread>();
  let nextId = 0;
  let closed = false;
  const start = () => {
    const thread: Thread = { worker: new Worker(workerUrl.href), files: new Map() };
    thread.worker.onmessage = ({ data }: MessageEvent<EncodeResponse>) => {
      const call = thread.files.get(data.id);
      thread.files.delete(data.id);
      if ("file" in data) call?.resolve(data.file);
      else call?.reject(new Error(`encoding failed: ${data.error}`));
    };
    // A thread that died fails its files (the archive encodes them again) and is replaced.
    thread.worker.onerror = (event) => fail(thread, new Error(`an encoder thread failed: ${event.message}`));
    thread.worker.addEventListener("close", () => fail(thread, new Error("an encoder thread exited")));
    thread.worker.unref();
    pool.add(thread);
  };
  const fail = (thread: Thread, error: Error) => {
    if (thread.dead) return;
    thread.dead = error;
    pool.delete(thread);
    thread.worker.terminate();
    for (const call of thread.files.values()) call?.reject(error);
    thread.files.clear();
    setTimeout(refill, 1000).unref(); // not at once: a thread that cannot start would be started again and again
  };
  const refill = () => {
    while (!closed && pool.size < threads) start();
  };
  refill();

  return {
    /** A new file, on the thread with the fewest open. */
    open(kind: string | undefined, compression: Compression): Encoding {
      const id = nextId++;
      if (pool.size === 0) refill();
      if (closed) return stopped;
      const thread = [...pool].reduce((least, other) =>
        other.files.size < least.files.size ? other : least,
      );
      thread.files.set(id, undefined);
      const add = (records: RecordBytes) => {
        if (thread.dead || records.unsentBytes === 0) return;
        const { bytes, ends } = records.takeUnsent();
        const request: EncodeRequest = { type: "add", id, kind, compression, bytes, ends };
        thread.worker.postMessage(request, [bytes.buffer as ArrayBuffer, ends.buffer as ArrayBuffer]);
      };
      return {
        add,
        finish(records) {
          add(records);
          return new Promise((resolve, reject) => {
            if (thread.dead) return reject(thread.dead);
            thread.files.set(id, { resolve, reject });
            thread.worker.postMessage({ type: "finish", id } satisfies EncodeRequest);
          });
        },
        drop() {
          if (!thread.files.delete(id) || thread.dead) return;
          thread.worker.postMessage({ type: "drop", id } satisfies EncodeRequest);
        },
      };
    },
    close() {
      closed = true;
      for (const thread of pool) fail(thread, new Error("the archive's encoders stopped"));
    },
  };
}
