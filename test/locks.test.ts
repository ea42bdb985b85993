import { afterAll, expect, test } from "bun:test";
import postgres from "postgres";
import { advisoryLocks } from "../src/db/locks";
import { eventually, testDatabase } from "./helpers";

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

test("advisory locks: one holder at a time; a cut connection forgets its locks, which another may then take", async () => {
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const [first, second] = [advisoryLocks(database.url, 7), advisoryLocks(database.url, 7)];
  cleanups.push(
    () => first.releaseAll(),
    () => second.releaseAll(),
  );
  expect(await first.take("session-1")).toBe(true);
  expect(await first.take("session-1")).toBe(true);
  expect(await second.take("session-1")).toBe(false);
  expect(await second.takeFree(["session-1", "session-2"])).toEqual(["session-2"]);

  // The first holder's connection is cut, as a PostgreSQL restart would: its locks are gone, and it knows it.
  const admin = postgres(database.url, { max: 1, onnotice: () => {} });
  cleanups.push(() => admin.end());
  const holders = await admin<{ pid: number }[]>`
    select distinct pid from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
  expect(holders).toHaveLength(2);
  const [cut] = await admin<{ pid: number }[]>`
    select pid from pg_locks where locktype = 'advisory' and objid = hashtext('session-1')::oid`;
  await admin`select pg_terminate_backend(${cut?.pid ?? 0})`;
  await eventually(async () => {
    await first.check().catch(() => {});
    return !first.holds("session-1");
  });
  expect(await second.take("session-1")).toBe(true);
  expect(await first.take("session-1")).toBe(false);
  // Released by closing the connection: the first takes it at once.
  await second.releaseAll();
  expect(await second.take("session-2")).toBe(false);
  expect(await first.take("session-1")).toBe(true);
});
