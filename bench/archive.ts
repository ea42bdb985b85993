import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { en, Faker } from "@faker-js/faker";
import { $ } from "bun";
import { createArchiver } from "../src/archive/archiver";
import { createDestination } from "../src/archive/destination";
import { kindParquet, readKindParquet } from "../src/archive/parquet";
import { type Config, loadConfig } from "../src/config";
import { createIngest } from "../src/ingest/pipeline";
import { allTopics, createKafka, ensureTopics, kindTopic } from "../src/kafka/client";
import { Publisher } from "../src/kafka/publisher";
import { sensors } from "../src/kinds/sensors";
import { createLogger } from "../src/log";
import { createMetrics } from "../src/metrics";
import type { Envelope } from "../src/record";
import { sensorsSimulator } from "../src/simulators/sensors";
import { startS3 } from "../test/s3";
import { machine, root } from "./lib";

// bun run bench/archive.ts [records]: the archive role (Kafka → Parquet files per event hour) against the
// Parquet writer alone writing the same rows in the same files, in one process run. Recorded, not asserted.
const RECORDS = Number(process.argv[2] ?? 1_000_000);
const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";
const DEVICES = 500;
const HOURS = 3;
/** Records per call into the ingest pipeline, and such calls in flight while producing. */
const CHUNK = 5000;
const IN_FLIGHT = 4;
const MiB = 2 ** 20;

const logger = createLogger("warn");
const prefix = `bench-${crypto.randomUUID().slice(0, 8)}`;
const topic = kindTopic(prefix, "sensors");
const configFor = (env: Record<string, string> = {}): Config =>
  loadConfig({
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_ACK_TIMEOUT_MS: "30000",
    LOG_LEVEL: "warn",
    ARCHIVE_FLUSH_SECONDS: "86400", // files close by size (ARCHIVE_MAX_FILE_BYTES, 64 MiB) or on stop
    ...env,
  });

/** CPU seconds of this process (every thread: JIT and GC included) since an earlier process.cpuUsage(). */
function cpuSeconds(since: NodeJS.CpuUsage) {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1e6;
}

/**
 * RECORDS simulated sensor readings, DEVICES devices over the last HOURS hours in time order, through the
 * gateway's own validation and envelope (ingest.prepare) and its Publisher into the sensors topic.
 */
async function produce(config: Config) {
  const kafka = createKafka(config, logger);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, config);
  await admin.disconnect();
  const metrics = createMetrics();
  const publisher = new Publisher(kafka, {
    ackTimeoutMs: config.KAFKA_ACK_TIMEOUT_MS,
    maxBatchBytes: config.KAFKA_MAX_BATCH_BYTES,
    logger,
    metrics,
  });
  const ingest = createIngest({ config, publisher, logger });
  const faker = new Faker({ locale: [en] });
  faker.seed(42);
  const devices = sensorsSimulator.devices(DEVICES, faker);
  const start = Date.now() - HOURS * 3_600_000;
  const step = (HOURS * 3_600_000) / Math.ceil(RECORDS / DEVICES);
  let jsonBytes = 0;
  const inFlight: Promise<unknown>[] = [];
  for (let first = 0; first < RECORDS; first += CHUNK) {
    const items = [];
    for (let i = first; i < Math.min(RECORDS, first + CHUNK); i++) {
      const device = devices[i % DEVICES] as (typeof devices)[number];
      const at = new Date(start + Math.floor(i / DEVICES) * step);
      items.push({ value: sensorsSimulator.reading(device, at, faker) });
    }
    const prepared = ingest.prepare(sensors, items, { via: "http" });
    if (prepared.rejections.length > 0) throw new Error(`refused: ${JSON.stringify(prepared.rejections[0])}`);
    for (const record of prepared.outgoing) jsonBytes += Buffer.byteLength(record.value);
    inFlight.push(publisher.publish(prepared.outgoing));
    if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
  }
  await Promise.all(inFlight);
  await publisher.close();
  return { jsonBytes };
}

/** The archive role from a fresh group over the topics until every record is in a completed file. */
async function archive(env: Record<string, string>) {
  const config = configFor({ ROLES: "archive", ...env });
  const kafka = createKafka(config, logger);
  const admin = kafka.admin();
  await admin.connect();
  // A group of the same name as a run before this one would start from that run's commits.
  await admin.deleteGroups([`${prefix}-archive`]).catch(() => {});
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, BigInt(high) - 1n]),
  );
  await admin.disconnect();
  const metrics = createMetrics();
  const destination = createDestination(config);
  const archiver = createArchiver({ config, kafka, destination, logger, metrics });
  const { consumer } = archiver;
  let firstBatch = 0;
  let cpuAtFirst = process.cpuUsage();
  let allRead = () => {};
  const read = new Promise<void>((resolve) => {
    allRead = resolve;
  });
  const reached = new Map<number, bigint>();
  consumer.on(consumer.events.START_BATCH_PROCESS, () => {
    if (firstBatch === 0) {
      firstBatch = performance.now();
      cpuAtFirst = process.cpuUsage();
    }
  });
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic !== topic) return;
    reached.set(payload.partition, BigInt(payload.lastOffset));
    if ([...ends].every(([partition, last]) => last < 0n || (reached.get(partition) ?? -1n) >= last))
      allRead();
  });
  const started = performance.now();
  await archiver.start();
  await read;
  // The last, partial files of each partition and hour are written here; leaving the group is not timed.
  await archiver.stop(600_000);
  const ended = archiver.stats.lastFileAt;
  const cpu = cpuSeconds(cpuAtFirst);
  if (archiver.stats.rows !== RECORDS) throw new Error(`archived ${archiver.stats.rows} of ${RECORDS} rows`);
  const bytes = (await metrics.archiveBytes.get()).values.reduce((sum, { value }) => sum + value, 0);
  return {
    rate: RECORDS / ((ended - firstBatch) / 1000),
    withJoin: RECORDS / ((ended - started) / 1000),
    seconds: (ended - firstBatch) / 1000,
    cpu,
    files: archiver.stats.files,
    bytes,
    destination,
    config,
  };
}

/** The archive's files read back (not timed): the very rows, in the very files, that it wrote. */
async function filesOf(destination: ReturnType<typeof createDestination>) {
  const keys = await destination.list("sensors/");
  const files: Envelope[][] = [];
  for (const key of keys) files.push(await readKindParquet(await destination.get(key)));
  const ids = new Set(files.flatMap((rows) => rows.map((row) => row.id)));
  if (ids.size !== RECORDS) throw new Error(`${ids.size} distinct ids in the files, not ${RECORDS}`);
  return files;
}

/** kindParquet alone over the same rows, file by file, as the archive encodes them. */
function writerAlone(files: Envelope[][], config: Config) {
  const options = { compression: config.ARCHIVE_COMPRESSION };
  kindParquet(sensors, files[0]?.slice(0, 1000) ?? [], options); // warm up the JIT on a small file
  let bytes = 0;
  const started = performance.now();
  const cpuAt = process.cpuUsage();
  for (const rows of files) bytes += kindParquet(sensors, rows, options).length;
  const seconds = (performance.now() - started) / 1000;
  return { rate: RECORDS / seconds, seconds, bytes, cpu: cpuSeconds(cpuAt) };
}

await $`bash ${root}/scripts/kafka.sh start`.quiet();
const load = (await Bun.file("/proc/loadavg").text()).split(" ")[0];
const folder = await mkdtemp(`${tmpdir()}/sluice-bench-archive-`);
const s3 = await startS3();
try {
  const producing = performance.now();
  const { jsonBytes } = await produce(configFor());
  console.error(
    `produced ${RECORDS} records (${(jsonBytes / MiB).toFixed(0)} MiB of JSON) in ${((performance.now() - producing) / 1000).toFixed(1)} s`,
  );
  await $`sync`;
  await Bun.sleep(3000);

  // Each archive run is followed by the writer alone over the files it wrote: a ratio compares neighbours.
  const pair = async (name: string, env: Record<string, string>) => {
    const run = await archive(env);
    let files = await filesOf(run.destination);
    const writer = writerAlone(files, run.config);
    files = [];
    console.error(`${name}: ${Math.round(run.rate)} rows/s, writer alone ${Math.round(writer.rate)} rows/s`);
    Bun.gc(true);
    await Bun.sleep(2000);
    return { ...run, writer };
  };
  const file = await pair("file://", { ARCHIVE_URL: `file://${folder}` });
  const bucket = await pair("s3proxy", {
    ARCHIVE_URL: `s3://${s3.bucket}/bench`,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  });

  const perMillion = (bytes: number) => ((bytes / RECORDS) * 1e6) / MiB;
  const date = new Date().toISOString().slice(0, 16).replace("T", " ");
  const command = `bun run bench/archive.ts${process.argv[2] ? ` ${process.argv[2]}` : ""}`;
  const table = [
    `Measured ${date} UTC on ${machine()}, with \`${command}\`; Kafka, s3proxy and the archive on one machine ` +
      `(load average ${load} at the start).`,
    "",
    `${RECORDS} simulated sensor readings (${DEVICES} devices over ${HOURS} hours, through the gateway's validation ` +
      `and envelope), ${(jsonBytes / MiB).toFixed(0)} MiB of JSON in Kafka (${Math.round(jsonBytes / RECORDS)} B a record), ` +
      `${file.config.KAFKA_PARTITIONS} partitions; ARCHIVE_MAX_FILE_BYTES ${file.config.ARCHIVE_MAX_FILE_BYTES / MiB} MiB, ` +
      `${file.config.ARCHIVE_COMPRESSION}.`,
    "",
    "| benchmark | Sluice | baseline (same run) | ratio | goal |",
    "| --- | --- | --- | --- | --- |",
    ...[["file://", file] as const, ["s3proxy", bucket] as const].map(
      ([name, run]) =>
        `| Archive to ${name} (rows/s), ${run.files} files, ~${Math.round(RECORDS / run.files)} rows each | ` +
        `${Math.round(run.rate)} (${run.seconds.toFixed(1)} s from the first batch to the last file, ` +
        `${run.cpu.toFixed(1)} CPU s; ${Math.round(run.withJoin)} with the group join) | ${Math.round(run.writer.rate)} ` +
        `kindParquet alone, the same rows in the same files, right after (${run.writer.seconds.toFixed(1)} s, ` +
        `${run.writer.cpu.toFixed(1)} CPU s) | ${(run.rate / run.writer.rate).toFixed(2)} (CPU time ` +
        `${(run.writer.cpu / run.cpu).toFixed(2)}) | ≥ 0.7 |`,
    ),
    `| Parquet bytes per million sensor records | ${perMillion(file.bytes).toFixed(1)} MiB (${(file.bytes / MiB).toFixed(1)} MiB ` +
      `in ${file.files} files, ${(file.bytes / RECORDS).toFixed(1)} B a record) | ${perMillion(jsonBytes).toFixed(1)} MiB ` +
      `of JSON in Kafka | ${(file.bytes / jsonBytes).toFixed(2)} | — |`,
    "",
  ].join("\n");
  console.log(`\n${table}`);
  await Bun.write(`${root}/bench/results/${date.replace(/[: ]/g, "-")}-archive.md`, table);
} finally {
  await s3.remove().catch(() => {});
  await rm(folder, { recursive: true, force: true });
  const kafka = createKafka(configFor(), logger);
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: allTopics(prefix) }).catch(() => {});
  await admin.deleteGroups([`${prefix}-archive`]).catch(() => {});
  await admin.disconnect();
}
process.exit(0);
