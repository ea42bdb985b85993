import { parseArgs } from "node:util";
import { type Config, loadConfig } from "../config";
import { decodePayload, mediaTypes, Refused } from "../ingest/decode";
import { createIngest, type DeadLetter } from "../ingest/pipeline";
import { createKafka, ensureTopics, kindTopic } from "../kafka/client";
import { type OutgoingRecord, Publisher } from "../kafka/publisher";
import { findKind, type Kind, kinds } from "../kinds";
import { createLogger } from "../log";
import { createMetrics } from "../metrics";
import { createDestination, type Destination } from "./destination";
import { type ArchivedFile, dayPrefixes, deadLetterFolder, parseKey, replayedHeader } from "./layout";
import { readDeadLetterParquet, readKindParquet } from "./parquet";

const usage = `usage: sluice replay --kind <kind|all> --since <time> [--until <time>] [--dead-letters]
  Reads the archive (ARCHIVE_URL) and publishes its records to their Kafka topics again, ids kept, so the sink
  stores each once: a new database's records and roll-ups are rebuilt from it.
  --kind          a kind (${kinds.map((kind) => kind.name).join(", ")}) or all
  --since         ISO 8601 time or date (inclusive), by the records' event time
  --until         ISO 8601 time or date (exclusive); default now
  --dead-letters  replay the dead letters of those kinds instead, through validation again (after a fix):
                  the ones now valid go to their kind's topic, the others back to the dead-letter topic`;

class UsageError extends Error {}

function parseTime(name: string, value: string | undefined, fallback?: Date): Date {
  if (value === undefined) {
    if (fallback) return fallback;
    throw new UsageError(`--${name} is required`);
  }
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--${name}: not a time: ${value}`);
  return time;
}

function optionsOf(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      kind: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      "dead-letters": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  if (!values.kind) throw new UsageError("--kind is required");
  const chosen = values.kind === "all" ? [...kinds] : [findKind(values.kind)];
  if (chosen.some((kind) => !kind)) throw new UsageError(`--kind: no kind ${values.kind}`);
  const since = parseTime("since", values.since);
  const until = parseTime("until", values.until, new Date());
  if (since >= until) throw new UsageError("--since must be before --until");
  return { kinds: chosen as Kind[], since, until, deadLetters: values["dead-letters"] };
}

/** The archive's files of a folder whose hour overlaps [since, until), oldest first. */
async function filesOf(destination: Destination, folder: string, since: Date, until: Date) {
  const files: ArchivedFile[] = [];
  for (const prefix of dayPrefixes(folder, since, until)) {
    for (const key of await destination.list(prefix)) {
      const file = parseKey(key);
      const end = file && file.hour.getTime() + 3_600_000;
      if (file && end && end > since.getTime() && file.hour < until) files.push(file);
    }
  }
  return files.sort((a, b) => a.hour.getTime() - b.hour.getTime() || a.partition - b.partition);
}

function progress(done: number, total: number, records: number) {
  const width = 30;
  const filled = total ? Math.round((done / total) * width) : width;
  const line = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} files, ${records} records`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}${done === total ? "\n" : ""}`);
  else if (done === total || done % Math.max(1, Math.floor(total / 10)) === 0) console.error(line);
}

/** A dead letter's raw input as records again, or why it cannot be replayed. */
function itemsOf(letter: DeadLetter, kind: Kind, config: Config) {
  const origin = letter.origin ?? "";
  const mediaType = Object.values(mediaTypes).find((type) => origin.startsWith(type)) ?? mediaTypes.json;
  const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxBatchItems: config.MAX_BATCH_ITEMS };
  const items = decodePayload(new TextEncoder().encode(letter.raw), mediaType, kind, limits);
  // Ids from the dead letter's: replaying it again stores its records once.
  return items.map((item, index) => {
    if (!("value" in item) || typeof item.value !== "object" || item.value === null || "id" in item.value) {
      return item;
    }
    return {
      ...item,
      value: { id: items.length === 1 ? letter.id : `${letter.id}-${index}`, ...item.value },
    };
  });
}

export async function runReplayCommand(args: string[]): Promise<number> {
  let options: ReturnType<typeof optionsOf>;
  try {
    options = optionsOf(args);
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (!options) {
    console.log(usage);
    return 0;
  }
  const config = loadConfig();
  if (!config.ARCHIVE_URL) {
    console.error("ARCHIVE_URL is not set: it names the archive to replay (file:///… or s3://bucket/prefix)");
    return 2;
  }
  const logger = createLogger(config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL);
  const destination = createDestination(config);
  const kafka = createKafka(config, logger);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, config);
  await admin.disconnect();
  const publisher = new Publisher(kafka, {
    ackTimeoutMs: Math.max(config.KAFKA_ACK_TIMEOUT_MS, 30_000),
    maxBatchBytes: config.KAFKA_MAX_BATCH_BYTES,
    logger,
    metrics: createMetrics(),
  });
  const ingest = createIngest({ config, publisher, logger });
  const headers = { [replayedHeader]: "1" };
  const { since, until } = options;
  const inRange = (iso: string) => {
    const time = Date.parse(iso);
    return time >= since.getTime() && time < until.getTime();
  };
  let records = 0;
  let refused = 0;
  try {
    const folders = options.deadLetters ? [deadLetterFolder] : options.kinds.map((kind) => kind.name);
    const files = (
      await Promise.all(folders.map((folder) => filesOf(destination, folder, since, until)))
    ).flat();
    progress(0, files.length, 0);
    for (const [index, file] of files.entries()) {
      const bytes = await destination.get(file.key);
      if (options.deadLetters) {
        for (const letter of await readDeadLetterParquet(bytes)) {
          const kind = options.kinds.find((candidate) => candidate.name === letter.kind);
          if (!kind || !inRange(letter.receivedAt)) continue;
          try {
            const outcome = await ingest.records(kind, itemsOf(letter, kind, config), {
              via: letter.via,
              origin: letter.origin,
            });
            records += outcome.envelopes.length;
            refused += outcome.rejections.length;
          } catch (error) {
            if (!(error instanceof Refused)) throw error;
            refused++;
          }
        }
      } else {
        const kind = options.kinds.find((candidate) => candidate.name === file.folder) as Kind;
        const topic = kindTopic(config.KAFKA_TOPIC_PREFIX, kind.name);
        const outgoing: OutgoingRecord[] = (await readKindParquet(bytes))
          .filter((envelope) => inRange(envelope.ts))
          .map((envelope) => ({ topic, key: envelope.sourceId, value: JSON.stringify(envelope), headers }));
        for (let start = 0; start < outgoing.length; start += 2000) {
          await publisher.publish(outgoing.slice(start, start + 2000));
        }
        records += outgoing.length;
      }
      progress(index + 1, files.length, records);
    }
  } finally {
    await publisher.close();
  }
  const what = options.deadLetters ? "dead letters valid now" : "records";
  const after = options.deadLetters ? `; ${refused} still refused, back in the dead-letter topic` : "";
  console.log(`replayed ${records} ${what}${after}`);
  return 0;
}
