import type { DeadLetter } from "../ingest/pipeline";
import { findKind } from "../kinds";
import type { Envelope } from "../record";
import type { EncodeRequest, EncodeResponse } from "./encoder";
import { deadLetterParquetStream, kindParquetStream, type ParquetStream } from "./parquet";

/**
 * An archive encoder thread. Records arrive as the bytes Kafka held them, a chunk at a time, and each chunk
 * becomes a row group of its file at once; `finish` returns the file.
 */

declare const self: Worker;
const decoder = new TextDecoder();
/** Open files, or why one failed (told at its finish). */
const files = new Map<number, { stream: ParquetStream<unknown> } | { error: string }>();

type AddRequest = Extract<EncodeRequest, { type: "add" }>;

function open({ kind: name, compression }: AddRequest): ParquetStream<unknown> {
  if (name === undefined) return deadLetterParquetStream({ compression }) as ParquetStream<unknown>;
  const kind = findKind(name);
  if (!kind) throw new Error(`no kind ${name}`);
  return kindParquetStream(kind, { compression }) as ParquetStream<unknown>;
}

function add(request: AddRequest) {
  const { id, bytes, ends } = request;
  const file = files.get(id) ?? { stream: open(request) };
  files.set(id, file);
  if (!("stream" in file)) return;
  const rows: (Envelope | DeadLetter)[] = [];
  for (let i = 0, start = 0; i < ends.length; start = ends[i] ?? 0, i++) {
    rows.push(JSON.parse(decoder.decode(bytes.subarray(start, ends[i]))));
  }
  file.stream.write(rows);
}

self.onmessage = ({ data: request }: MessageEvent<EncodeRequest>) => {
  const { id } = request;
  try {
    if (request.type === "add") return add(request);
    const file = files.get(id);
    files.delete(id);
    if (request.type === "drop") return;
    if (!file) throw new Error("nothing was written to the file");
    if ("error" in file) throw new Error(file.error);
    const bytes = file.stream.finish();
    self.postMessage({ id, file: bytes } satisfies EncodeResponse, [bytes.buffer as ArrayBuffer]);
  } catch (error) {
    const message = String((error as Error | undefined)?.message ?? error);
    if (request.type === "add") files.set(id, { error: message });
    else if (request.type === "finish") self.postMessage({ id, error: message } satisfies EncodeResponse);
  }
};
