import type { DeadLetter } from "../ingest/pipeline";
import { findKind } from "../kinds";
import type { Envelope } from "../record";
import type { EncodeRequest, EncodeResponse } from "./encoder";
import { deadLetterParquet, kindParquet } from "./parquet";

/** An archive encoder thread: the records of one file, as the bytes Kafka held them, in; the Parquet file out. */

declare const self: Worker;
const decoder = new TextDecoder();

self.onmessage = ({ data }: MessageEvent<EncodeRequest>) => {
  const { id, kind: name, compression, bytes, ends } = data;
  try {
    const rows: unknown[] = [];
    for (let i = 0, start = 0; i < ends.length; start = ends[i] ?? 0, i++) {
      rows.push(JSON.parse(decoder.decode(bytes.subarray(start, ends[i]))));
    }
    const kind = name === undefined ? undefined : findKind(name);
    if (name !== undefined && !kind) throw new Error(`no kind ${name}`);
    const file = kind
      ? kindParquet(kind, rows as Envelope[], { compression })
      : deadLetterParquet(rows as DeadLetter[], { compression });
    self.postMessage({ id, file } satisfies EncodeResponse, [file.buffer as ArrayBuffer]);
  } catch (error) {
    self.postMessage({ id, error: (error as Error).message } satisfies EncodeResponse);
  }
};
