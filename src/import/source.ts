import { type FileHandle, open, stat } from "node:fs/promises";

export type SourceEvent =
  /** Bytes read; valid until the next event is asked for. `caughtUp`: nothing more was waiting. */
  | { type: "data"; bytes: Uint8Array; caughtUp: boolean }
  /** Nothing new for `idleMs`: the time to send what is in hand. */
  | { type: "idle" }
  /** Following a file that was rotated (replaced) or truncated: what follows is a new file, from its start. */
  | { type: "reopened"; reason: "replaced" | "truncated" };

export interface SourceOptions {
  /** A path, or "-" for stdin. */
  path: string;
  follow: boolean;
  idleMs: number;
  /** How often a followed file is looked at once its end is reached. */
  pollMs?: number;
  chunkBytes?: number;
  signal: AbortSignal;
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal) {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The file or stdin as a stream of chunks, read one at a time, in constant memory. */
export function readSource(options: SourceOptions): AsyncGenerator<SourceEvent> {
  return options.path === "-" ? readStdin(options) : readFile(options);
}

async function* readStdin(options: SourceOptions): AsyncGenerator<SourceEvent> {
  const reader = Bun.stdin.stream().getReader();
  const { signal } = options;
  let next = reader.read();
  let idleSent = true;
  const aborted = new Promise<"aborted">((resolve) => {
    signal.addEventListener("abort", () => resolve("aborted"), { once: true });
  });
  try {
    while (!signal.aborted) {
      let timer: Timer | undefined;
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), options.idleMs);
      });
      const result = await Promise.race([next, idle, aborted]);
      clearTimeout(timer);
      if (result === "aborted") return;
      if (result === "idle") {
        if (!idleSent) yield { type: "idle" };
        idleSent = true;
        continue;
      }
      if (result.done) return;
      idleSent = false;
      // A pipe hands over at most 64 KiB at a time; less means the writer had nothing more for now.
      yield { type: "data", bytes: result.value, caughtUp: result.value.length < 65_536 };
      next = reader.read();
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Reads a file from its start with positioned reads; with `follow`, then waits for more like `tail -F`:
 * when the path names another file (renamed away and recreated) the old one is read to its end first,
 * then the new one from its start; when the file shrinks (truncated in place) it is read again from the
 * start. A path that is missing for a while (between a rename and the new file) is waited for.
 */
async function* readFile(options: SourceOptions): AsyncGenerator<SourceEvent> {
  const { signal, path } = options;
  const pollMs = options.pollMs ?? 200;
  const buffer = Buffer.allocUnsafe(options.chunkBytes ?? 256 * 1024);
  let handle: FileHandle = await open(path, "r");
  let identity = await handle.stat();
  // A pipe or a device (`<(zcat f.gz)`, /dev/stdin) is read in sequence, and not followed.
  const seekable = identity.isFile();
  let position = 0;
  let lastData = performance.now();
  let idleSent = true;
  /** Everything the open file holds from `position` on. */
  async function* drain(): AsyncGenerator<SourceEvent> {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, seekable ? position : null);
      if (bytesRead === 0) return;
      position += bytesRead;
      lastData = performance.now();
      idleSent = false;
      yield { type: "data", bytes: buffer.subarray(0, bytesRead), caughtUp: bytesRead < buffer.length };
      if (signal.aborted) return;
    }
  }
  try {
    while (!signal.aborted) {
      yield* drain();
      if (!options.follow || !seekable || signal.aborted) return;
      if (!idleSent && performance.now() - lastData >= options.idleMs) {
        idleSent = true;
        yield { type: "idle" };
      }
      const current = await stat(path).catch(() => undefined);
      if (current && (current.ino !== identity.ino || current.dev !== identity.dev)) {
        const next = await open(path, "r").catch(() => undefined);
        if (next) {
          // What was written to the old file before it was replaced comes first.
          yield* drain();
          await handle.close();
          handle = next;
          identity = await handle.stat();
          position = 0;
          yield { type: "reopened", reason: "replaced" };
          continue;
        }
      } else if (current && current.size < position) {
        position = 0;
        yield { type: "reopened", reason: "truncated" };
        continue;
      }
      await pause(pollMs, signal);
    }
  } finally {
    await handle.close();
  }
}
