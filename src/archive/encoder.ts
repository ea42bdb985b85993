import type { Compression } from "./parquet";

/**
 * Parquet encoding off the archive's consumer thread, on a pool of threads: the consumer goes on reading while
 * files are encoded. Records cross as the bytes Kafka held them (one buffer a file, moved, not copied), which
 * costs a thread a JSON.parse per record; cloning parsed records across would cost about as much as encoding.
 */

export interface EncodeRequest {
  id: number;
  /** The kind's name; none for dead letters. */
  kind?: string;
  compression: Compression;
  /** The records' JSON, one after another; record i ends at ends[i]. */
  bytes: Uint8Array;
  ends: Uint32Array;
}

export type EncodeResponse = { id: number; file: Uint8Array } | { id: number; error: string };

/** One file's records as Kafka held them, gathered until the file is encoded. */
export class RecordBytes {
  private chunks: Uint8Array[] = [];
  private length = 0;

  get count() {
    return this.chunks.length;
  }

  push(value: Uint8Array) {
    this.chunks.push(value);
    this.length += value.length;
  }

  /** The records in one buffer and where each ends. */
  take(): Pick<EncodeRequest, "bytes" | "ends"> {
    const bytes = new Uint8Array(this.length);
    const ends = new Uint32Array(this.chunks.length);
    let at = 0;
    this.chunks.forEach((chunk, i) => {
      bytes.set(chunk, at);
      at += chunk.length;
      ends[i] = at;
    });
    this.chunks = [];
    this.length = 0;
    return { bytes, ends };
  }
}

// Inside an executable built by scripts/build.sh, import.meta.url is the executable's, at the root of the
// embedded files, and the worker lies there under its source path.
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./src/archive/encode-worker.ts", import.meta.url)
  : new URL("./encode-worker.ts", import.meta.url);

type Call = { resolve: (file: Uint8Array) => void; reject: (error: Error) => void };

export function createEncoderPool(threads: number) {
  /** Each thread and the calls it has not answered yet. */
  const workers = new Map<Worker, Map<number, Call>>();
  let nextId = 0;
  let closed = false;
  const start = () => {
    const worker = new Worker(workerUrl.href);
    const calls = new Map<number, Call>();
    worker.onmessage = ({ data }: MessageEvent<EncodeResponse>) => {
      const call = calls.get(data.id);
      calls.delete(data.id);
      if ("file" in data) call?.resolve(data.file);
      else call?.reject(new Error(`encoding failed: ${data.error}`));
    };
    // A thread that died fails its calls (the archive retries them) and is replaced.
    worker.onerror = (event) => {
      workers.delete(worker);
      worker.terminate();
      for (const call of calls.values()) call.reject(new Error(`an encoder thread failed: ${event.message}`));
      if (!closed) start();
    };
    worker.unref();
    workers.set(worker, calls);
  };
  for (let i = 0; i < threads; i++) start();

  return {
    /** The Parquet file of the records, encoded on the least busy thread. */
    encode(kind: string | undefined, compression: Compression, records: RecordBytes): Promise<Uint8Array> {
      const { bytes, ends } = records.take();
      const id = nextId++;
      const [worker, calls] = [...workers].reduce((least, entry) =>
        entry[1].size < least[1].size ? entry : least,
      );
      return new Promise((resolve, reject) => {
        calls.set(id, { resolve, reject });
        const request: EncodeRequest = { id, kind, compression, bytes, ends };
        worker.postMessage(request, [bytes.buffer as ArrayBuffer, ends.buffer as ArrayBuffer]);
      });
    },
    close() {
      closed = true;
      for (const [worker, calls] of workers) {
        worker.terminate();
        for (const call of calls.values()) call.reject(new Error("the archive's encoders stopped"));
      }
      workers.clear();
    },
  };
}

export type EncoderPool = ReturnType<typeof createEncoderPool>;
