// The kafkajs patch writes uncompressed record batches in one pass (patches/kafkajs@2.2.4.patch). These tests
// hold it to the bytes kafkajs's own encoder writes and to what a real broker hands back.
import { afterAll, expect, spyOn, test } from "bun:test";
import { Kafka, logLevel, type Message } from "kafkajs";
import { brokers } from "./helpers";

interface EncodeArgs {
  acks: number;
  timeout: number;
  transactionalId: string | null;
  producerId: unknown;
  producerEpoch: number;
  topicData: {
    topic: string;
    partitions: { partition: number; firstSequence: number; messages: Message[] }[];
  }[];
}
const produceRequest = require("kafkajs/src/protocol/requests/produce/v3/request.js") as (
  args: EncodeArgs,
) => {
  encode: () => Promise<{ buffer: Buffer }>;
};
const Long = require("kafkajs/src/utils/long.js") as { fromValue: (value: number) => unknown };

const samples: Message[][] = [
  [
    { key: "device-1", value: JSON.stringify({ city: "Zürich ✓", temperature: 21.5 }) },
    { key: null, value: "x".repeat(300) },
    { key: Buffer.from([0, 1, 255]), value: null },
  ],
  [{ key: "k", value: "v", headers: { one: "1", many: ["a", Buffer.from("bb")] } }],
  Array.from({ length: 200 }, (_, i) => ({ key: `source-${i}`, value: "y".repeat(i * 3) })),
];

test("an uncompressed batch without timestamps is encoded byte for byte as kafkajs's general encoder does", async () => {
  const now = 1_763_800_000_123;
  const clock = spyOn(Date, "now").mockReturnValue(now);
  try {
    for (const messages of samples) {
      for (const transactionalId of [null, "tx-1"]) {
        const encode = async (batch: Message[]) => {
          const request = produceRequest({
            acks: -1,
            timeout: 30_000,
            transactionalId,
            producerId: Long.fromValue(4321),
            producerEpoch: 3,
            topicData: [{ topic: "t", partitions: [{ partition: 2, firstSequence: 77, messages: batch }] }],
          });
          return (await request.encode()).buffer;
        };
        const onePass = await encode(messages);
        // A timestamp on each message (the clock's own) sends the batch down kafkajs's general path.
        const general = await encode(messages.map((message) => ({ ...message, timestamp: String(now) })));
        expect(onePass.equals(general)).toBe(true);
      }
    }
  } finally {
    clock.mockRestore();
  }
});

const kafka = new Kafka({
  clientId: "sluice-test-encoding",
  brokers: brokers.split(","),
  logLevel: logLevel.NOTHING,
});
const topic = `test.encoding.${crypto.randomUUID()}`;
const admin = kafka.admin();
afterAll(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect();
});

test("a real broker takes the one-pass batches from an idempotent producer and gives back every key, value and header", async () => {
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = samples.flat();
  for (const messages of samples) await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `test-${crypto.randomUUID()}`, maxWaitTimeInMs: 100 });
  const received: { key: Buffer | null; value: Buffer | null; headers: Record<string, unknown> }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      received.push({ key: message.key, value: message.value, headers: message.headers ?? {} });
    },
  });
  const deadline = Date.now() + 15_000;
  while (received.length < sent.length && Date.now() < deadline) await Bun.sleep(50);
  await consumer.disconnect();

  const bytes = (value: unknown) =>
    value === null || value === undefined ? null : Buffer.from(value as string);
  expect(received.length).toBe(sent.length);
  for (const [i, message] of sent.entries()) {
    const got = received[i];
    expect(got?.key).toEqual(bytes(message.key));
    expect(got?.value).toEqual(bytes(message.value));
    const headers = Object.fromEntries(
      Object.entries(message.headers ?? {}).map(([name, value]) => [
        name,
        Array.isArray(value) ? value.map(bytes) : bytes(value),
      ]),
    );
    expect(got?.headers).toEqual(headers);
  }
});

type RecordDecoded = { offset: string; timestamp: string; value: Buffer | null };
const encodeRecord = require("kafkajs/src/protocol/recordBatch/record/v0") as (args: {
  offsetDelta: number;
  timestampDelta: unknown;
  key: Buffer | null;
  value: Buffer | null;
}) => { buffer: Buffer };
const decodeRecord = require("kafkajs/src/protocol/recordBatch/record/v0/decoder") as (
  decoder: unknown,
  context: Record<string, unknown>,
) => RecordDecoded;
const KafkaDecoder = require("kafkajs/src/protocol/decoder") as new (
  buffer: Buffer,
) => {
  readVarInt(): number;
};

test("records decode offsets and timestamps as kafkajs's 64-bit arithmetic does, past 2^53 too", () => {
  const decode = (
    firstOffset: string,
    firstTimestamp: string,
    offsetDelta: number,
    timestampDelta: number,
  ) => {
    const { buffer } = encodeRecord({
      offsetDelta,
      timestampDelta: Long.fromValue(timestampDelta),
      key: null,
      value: Buffer.from("v"),
    });
    const decoder = new KafkaDecoder(buffer);
    decoder.readVarInt(); // the record's length, which the batch decoder reads before it
    return decodeRecord(decoder, { firstOffset, firstTimestamp, magicByte: 2, timestampType: 0 });
  };
  expect(decode("1200", "1765100000000", 7, 250)).toMatchObject({
    offset: "1207",
    timestamp: "1765100000250",
  });
  expect(decode("-1", "-1", 0, 0)).toMatchObject({ offset: "-1", timestamp: "-1" });
  // Beyond exact doubles: the Long path, digit for digit.
  expect(decode("9007199254740990", "9007199254740990", 5, 5)).toMatchObject({
    offset: "9007199254740995",
    timestamp: "9007199254740995",
  });
});
