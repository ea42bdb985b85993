import type { ReservedSql, Sql } from "postgres";

/**
 * PostgreSQL session advisory locks in one space, held on a connection reserved for them: while this process
 * lives they are its own, and when it dies its connection goes and the locks with it, so another instance can
 * take them at once. Each lock is taken at most once (they are re-entrant in PostgreSQL, and counting them
 * would make a release leave some behind); asking again for one held checks that the connection lives. When it
 * fails, every lock is forgotten and `take` throws; the next `take` starts again from a new connection.
 */
export function advisoryLocks(client: Sql, space: number) {
  let connection: Promise<ReservedSql> | undefined;
  const held = new Set<string>();

  function drop() {
    const lost = connection;
    connection = undefined;
    held.clear();
    lost?.then((reserved) => reserved.release()).catch(() => {});
  }

  return {
    /** Whether this process holds the lock, taking it when it is free; throws when PostgreSQL cannot say. */
    async take(name: string): Promise<boolean> {
      try {
        connection ??= client.reserve();
        const reserved = await connection;
        // A lock held already: the session that holds it is checked to be alive.
        if (held.has(name)) return (await reserved`select true as owned`).length === 1;
        const [row] = await reserved`select pg_try_advisory_lock(${space}, hashtext(${name})) as owned`;
        if (row?.owned === true) held.add(name);
        return row?.owned === true;
      } catch (error) {
        drop();
        throw error;
      }
    },
    /** Of the named locks, those that were free, now taken (one round trip); throws when PostgreSQL cannot say. */
    async takeFree(names: string[]): Promise<string[]> {
      const wanted = names.filter((name) => !held.has(name));
      if (wanted.length === 0) return [];
      try {
        connection ??= client.reserve();
        const reserved = await connection;
        const rows = await reserved<{ name: string }[]>`
          select name from unnest(${wanted}::text[]) as name where pg_try_advisory_lock(${space}, hashtext(name))`;
        for (const { name } of rows) held.add(name);
        return rows.map(({ name }) => name);
      } catch (error) {
        drop();
        throw error;
      }
    },
    holds: (name: string) => held.has(name),
    async release(name: string) {
      if (!held.delete(name)) return;
      const reserved = await connection?.catch(() => undefined);
      if (reserved)
        await reserved`select pg_advisory_unlock(${space}, hashtext(${name}))`.catch(() => drop());
    },
    /** Gives every lock back and the connection to the pool (session locks outlive a released connection). */
    async releaseAll() {
      const reserved = await connection?.catch(() => undefined);
      connection = undefined;
      held.clear();
      if (!reserved) return;
      await reserved`select pg_advisory_unlock_all()`.catch(() => {});
      reserved.release();
    },
  };
}

export type AdvisoryLocks = ReturnType<typeof advisoryLocks>;
