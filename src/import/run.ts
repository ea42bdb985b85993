import { stat } from "node:fs/promises";
import { type Format, type ImportOptions, importUsage, parseImportArgs, UsageError } from "./args";
import { type Batch, Batcher } from "./batch";
import { csvSplitter } from "./csv";
import { jsonArraySplitter, ndjsonSplitter } from "./json";
import type { SplitSink, Splitter } from "./pending";
import { type Counters, createReport } from "./report";
import { createSender } from "./send";
import { readSource } from "./source";

/** JSON arrays are sent as NDJSON, one element a line, so that one malformed element spoils only itself. */
const contentTypes: Record<Format, string> = {
  csv: "text/csv",
  ndjson: "application/x-ndjson",
  json: "application/x-ndjson",
};

const splitters: Record<Format, (sink: SplitSink, limit: number) => Splitter> = {
  csv: csvSplitter,
  ndjson: ndjsonSplitter,
  json: jsonArraySplitter,
};

export interface ImportIo {
  env: Record<string, string | undefined>;
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  /** Is `out` a terminal: progress redrawn in place, or plain lines now and then. */
  tty: boolean;
}

export interface ImportResult {
  code: 0 | 1;
  counters: Counters;
  summary: string;
  stopped?: string;
}

const where = (generation: number, line: number) =>
  generation === 0 ? `line ${line}` : `line ${line} (after rotation ${generation})`;

/** Streams a file (or stdin) to the gateway in batches; see `importUsage`. */
export async function runImport(options: ImportOptions, io: ImportIo): Promise<ImportResult> {
  const base = (io.env.SLUICE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, "");
  const url = `${base}/v1/${options.kind.name}/${options.kind.resource}`;
  const name = options.path === "-" ? "stdin" : options.path;
  let total: number | undefined;
  if (options.path !== "-") {
    const info = await stat(options.path).catch((error: Error) => {
      throw new UsageError(`cannot read ${options.path}: ${error.message}`);
    });
    if (info.isDirectory()) throw new UsageError(`${options.path} is a directory`);
    if (info.isFile() && !options.follow) total = info.size;
  }

  const report = createReport({ total, tty: io.tty, out: io.out, err: io.err });
  const { counters } = report;
  const ready: Batch[] = [];
  const batcher = new Batcher({
    maxRecords: options.batch,
    maxBytes: options.maxBytes,
    onBatch: (batch) => ready.push(batch),
    onRefuse: (line, message) => report.refuse(where(batcher.generation, line), [{ path: "", message }]),
  });
  const sink: SplitSink = {
    header: (bytes) => batcher.setHeader(bytes),
    record: (bytes, start, end, line) => {
      if (batcher.add(bytes, start, end, line)) counters.read++;
    },
    refuse: (line, message) => report.refuse(where(batcher.generation, line), [{ path: "", message }]),
  };
  const split = () => splitters[options.format](sink, options.maxBytes);
  let splitter = split();
  const sender = createSender({
    url,
    apiKey: io.env.API_KEY,
    contentType: contentTypes[options.format],
    concurrency: options.concurrency,
    onAnswered: (batch, accepted) => {
      counters.sent += batch.lines.length;
      counters.accepted += accepted;
    },
    onRefused: (batch, index, errors) =>
      report.refuse(where(batch.generation, batch.lines[index] ?? 0), errors),
    notice: report.say,
  });

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) process.exit(130);
    report.say(`${signal}: sending what was read, then stopping (${signal} again stops at once)`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const live = options.follow || options.path === "-";
  const submitReady = async () => {
    while (ready.length > 0 && !sender.stopped) await sender.submit(ready.shift() as Batch);
  };

  let readError: string | undefined;
  try {
    const source = readSource({
      path: options.path,
      follow: options.follow,
      idleMs: options.idleMs,
      signal: controller.signal,
    });
    for await (const event of source) {
      if (event.type === "data") {
        counters.bytes += event.bytes.length;
        splitter.push(event.bytes);
        // Records trickling in: none waits much longer than the idle time for its batch to fill.
        const waited = performance.now() - batcher.startedAt;
        if (live && event.caughtUp && batcher.count > 0 && waited >= options.idleMs) batcher.flush();
      } else if (event.type === "idle") batcher.flush();
      else {
        splitter.end();
        batcher.nextGeneration();
        splitter = split();
        const what = event.reason === "replaced" ? "was replaced (rotated)" : "was truncated";
        report.say(`${name} ${what}; reading it from its start (lines counted afresh)`);
      }
      await submitReady();
      if (sender.stopped) break;
    }
  } catch (error) {
    // The file became unreadable midway: what was read still goes, and the import says why it stopped.
    readError = `reading ${name}: ${(error as Error).message}`;
  }
  try {
    splitter.end();
    batcher.flush();
    await submitReady();
    await sender.drain();
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const { summary } = report.finish(name);
  const stopped = sender.stopped?.message ?? readError;
  if (stopped) {
    const unsent = counters.read - counters.sent;
    io.err.write(
      `import stopped: ${stopped}${unsent > 0 ? ` (${unsent} records read were not sent)` : ""}\n`,
    );
  }
  return { code: stopped || counters.refused > 0 ? 1 : 0, counters, summary, stopped };
}

export async function runImportCommand(
  argv: string[],
  io: ImportIo = { env: process.env, out: process.stdout, err: process.stderr, tty: !!process.stdout.isTTY },
): Promise<number> {
  try {
    const options = parseImportArgs(argv);
    return (await runImport(options, io)).code;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    // --help (a usage error without a message) is an answer, not a mistake.
    if (!error.message) io.out.write(`${importUsage}\n`);
    else io.err.write(`${error.message}\n${importUsage}\n`);
    return error.message ? 2 : 0;
  }
}
