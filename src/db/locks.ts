import postgres from "postgres";

/**
 * PostgreSQL session advisory locks in one space, on a connection of their own: while this process lives they
 * are its own, and when it dies its connection goes and the locks with it, so another instance can take them at
 * once. The connection is not the pool's: a pooled connection is recycled after its lifetime (and its locks
 * with it, unnoticed), and one that broke is reconnected under the same handle. When this one closes, every lock
 * is forgotten; the next `take` opens a new connection and takes them anew. Each lock is taken at most once
 * (they are re-entrant in PostgreSQL, and counting them would make a release leave some behind).
 */
export function advisoryLocks(url: string, space: number) {
  const held = new Set<string>();
  let closed = false;
  let lost = false;
  const connect = () => {
    const opened = postgres(url, {
      max: 1,
      max_lifetime: 0,
      idle_timeout: 0,
      connect_timeout: 3,
      onnotice: () => {},
      onclose: () => {
        if (opened !== connection) return;
        held.clear();
        lost = true;
      },
    });
    return opened;
  };
  let connection = connect();
  // A client whose connection was cut is not reused: postgres.js keeps the error the server sent as it cut it
  // and gives it to the next query on the new connection.
  const client = () => {
    if (lost) {
      lost = false;
      void connection.end({ timeout: 0 }).catch(() => {});
      connection = connect();
    }
    return connection;
  };

  return {
    /** Whether this process holds the lock, taking it when it is free; throws when PostgreSQL cannot say. */
    async take(name: string): Promise<boolean> {
      if (closed) return false;
      if (held.has(name)) return true;
      const [row] = await client()<{ owned: boolean }[]>`
        select pg_try_advisory_lock(${space}, hashtext(${name})) as owned`;
      if (row?.owned === true) held.add(name);
      return row?.owned === true;
    },
    /** Of the named locks, those that were free, now taken (one round trip); throws when PostgreSQL cannot say. */
    async takeFree(names: string[]): Promise<string[]> {
      const wanted = names.filter((name) => !held.has(name));
      if (closed || wanted.length === 0) return [];
      const rows = await client()<{ name: string }[]>`
        select name from unnest(${wanted}::text[]) as name where pg_try_advisory_lock(${space}, hashtext(name))`;
      for (const { name } of rows) held.add(name);
      return rows.map(({ name }) => name);
    },
    holds: (name: string) => held.has(name),
    /** Proves the connection alive; when it was lost, its locks are forgotten (`onclose`) before this resolves. */
    async check() {
      await client()`select 1`;
    },
    async release(name: string) {
      if (!held.delete(name)) return;
      await client()`select pg_advisory_unlock(${space}, hashtext(${name}))`.catch(() => {});
    },
    /** Gives every lock back by closing the connection; takes none after. */
    async releaseAll() {
      closed = true;
      held.clear();
      await connection.end({ timeout: 5 }).catch(() => {});
    },
  };
}
