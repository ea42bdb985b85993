import { Database, type Statement } from "bun:sqlite";
import { mkdirSync, renameSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { KafkaUnavailable, type OutgoingRecord } from "../kafka/publisher";
import type { Logger } from "../log";
import { encodeEntry, type SpoolRow, type StoredColumns } from "./entry";

export type SpoolRefusalReason = "full" | "low-disk" | "write-failed" | "closed";

/** Kafka could not take the records and neither could the spool: the caller answers 503 or withholds the PUBACK. */
export class SpoolRefused extends KafkaUnavailable {
  constructor(
    readonly reason: SpoolRefusalReason,
    message: string,
  ) {
    super(message);
  }

  /** The problem type of the 503: no room (wait for the forwarder), or a spool that cannot work at all. */
  get slug() {
    return this.reason === "full" || this.reason === "low-disk" ? "spool-full" : "spool-unavailable";
  }
}

export interface SpoolStoreOptions {
  dir: string;
  maxBytes: number;
  minFreeBytes: number;
  /** full: each commit is on disk before it resolves (power loss too); normal: it survives a crash of the process. */
  synchronous: "full" | "normal";
  logger: Logger;
}

interface PendingAppend {
  rows: StoredColumns[];
  bytes: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

const FILE = "spool.db";

function openDatabase(path: string, synchronous: string) {
  const db = new Database(path, { create: true, strict: true });
  try {
    // One process per spool: its in-memory account of keys and sizes must be the whole truth.
    db.run("pragma locking_mode = exclusive");
    db.run("pragma auto_vacuum = incremental");
    db.run("pragma journal_mode = wal");
    db.run(`pragma synchronous = ${synchronous}`);
    db.run(`create table if not exists spooled (
      seq integer primary key, topic text, key text, value text, headers text,
      kind text, transport text, reason text, spooled_at integer, bytes integer, checksum integer)`);
    db.run("begin immediate");
    db.run("commit");
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

const isDamaged = (error: unknown) =>
  /SQLITE_(CORRUPT|NOTADB)/.test(String((error as { code?: string }).code));

/**
 * The durable half of the spool: records in arrival order in a SQLite table (WAL). Appends from concurrent
 * callers are committed together, so the fsync of a commit is shared; a caller's promise resolves only
 * after its records' commit.
 */
export class SpoolStore {
  readonly path: string;
  /** Committed records and their bytes; `oldestAt` is when the oldest was spooled (ms). */
  readonly depth = { records: 0, bytes: 0, oldestAt: undefined as number | undefined };
  private readonly db: Database;
  private readonly insert: Statement;
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private scheduled = false;
  private closed = false;
  /** Set when an append did not fit; cleared once the forwarder frees space. */
  private refusedForSpace = false;

  constructor(private readonly options: SpoolStoreOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.path = join(options.dir, FILE);
    this.db = this.open();
    this.insert = this.db.prepare(
      `insert into spooled (topic, key, value, headers, kind, transport, reason, bytes, checksum, spooled_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** A file SQLite cannot read is set aside for inspection, not deleted, and a new spool is started. */
  private open(): Database {
    try {
      const db = openDatabase(this.path, this.options.synchronous);
      this.loadDepth(db);
      return db;
    } catch (error) {
      if ((error as { code?: string }).code === "SQLITE_BUSY")
        throw new Error(
          `the spool ${this.path} is in use by another process; give each process its own SPOOL_DIR`,
        );
      if (!isDamaged(error)) throw error;
      const aside = `${this.path}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}`;
      for (const suffix of ["", "-wal", "-shm"]) {
        try {
          renameSync(this.path + suffix, aside + suffix);
        } catch {}
      }
      this.options.logger.error("spool file unreadable; set aside, starting an empty spool", {
        error: (error as Error).message,
        setAside: aside,
      });
      const db = openDatabase(this.path, this.options.synchronous);
      this.loadDepth(db);
      return db;
    }
  }

  private loadDepth(db: Database) {
    const row = db
      .query("select count(*) as records, coalesce(sum(bytes), 0) as bytes from spooled")
      .get() as {
      records: number;
      bytes: number;
    };
    this.depth.records = row.records;
    this.depth.bytes = row.bytes;
    this.depth.oldestAt = this.headSpooledAt(db);
  }

  private headSpooledAt(db = this.db): number | undefined {
    const head = db.query("select spooled_at from spooled order by seq limit 1").get() as {
      spooled_at: unknown;
    } | null;
    return head && typeof head.spooled_at === "number" ? head.spooled_at : undefined;
  }

  /** Spooled records per Kafka topic and key, as found at start. */
  countsByKey(): { topic: string; key: string; records: number }[] {
    return this.db
      .query("select topic, key, count(*) as records from spooled where key is not null group by topic, key")
      .all() as { topic: string; key: string; records: number }[];
  }

  /** Resolves once the records are committed; rejects with SpoolRefused when they do not fit or cannot be written. */
  append(records: OutgoingRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolRefused("closed", "the spool is closed"));
    const rows = records.map(encodeEntry);
    const bytes = rows.reduce((sum, row) => sum + row[7], 0);
    if (this.depth.bytes + this.pendingBytes + bytes > this.options.maxBytes) {
      this.refusedForSpace = true;
      return Promise.reject(
        new SpoolRefused(
          "full",
          `Kafka is unavailable and the spool is full (${this.depth.bytes} of ${this.options.maxBytes} bytes)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ rows, bytes, resolve, reject });
      this.pendingBytes += bytes;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush() {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return;
    const lowDisk = this.lowDisk();
    if (lowDisk) {
      for (const append of batch)
        append.reject(new SpoolRefused("low-disk", `Kafka is unavailable and ${lowDisk}`));
      return;
    }
    const now = Date.now();
    try {
      this.db.transaction(() => {
        for (const append of batch) for (const row of append.rows) this.insert.run(...row, now);
      })();
    } catch (error) {
      this.options.logger.error("spool write failed", { error: (error as Error).message });
      const refusal = new SpoolRefused("write-failed", `Kafka is unavailable and the spool write failed`);
      for (const append of batch) append.reject(refusal);
      return;
    }
    for (const append of batch) {
      this.depth.records += append.rows.length;
      this.depth.bytes += append.bytes;
    }
    this.depth.oldestAt ??= now;
    for (const append of batch) append.resolve();
  }

  /** Why the disk cannot take more, or undefined. */
  private lowDisk(): string | undefined {
    const { bavail, bsize } = statfsSync(this.options.dir);
    const free = bavail * bsize;
    if (free >= this.options.minFreeBytes) return undefined;
    return `the spool's disk has ${free} bytes free, less than SPOOL_MIN_FREE_BYTES (${this.options.minFreeBytes})`;
  }

  /** The oldest rows, in order, up to either limit (at least one row when any is there). */
  oldest(maxRecords: number, maxBytes: number): SpoolRow[] {
    const rows = this.db
      .query(
        "select seq, topic, key, value, headers, kind, transport, reason, bytes, checksum from spooled order by seq limit ?",
      )
      .all(maxRecords) as SpoolRow[];
    let bytes = 0;
    const end = rows.findIndex((row, i) => {
      bytes += typeof row.bytes === "number" ? row.bytes : 0;
      return i > 0 && bytes > maxBytes;
    });
    return end === -1 ? rows : rows.slice(0, end);
  }

  /** Removes rows up to `seq` (they are in Kafka now); `rows` are the ones read, for the account of bytes. */
  deleteThrough(seq: number, rows: SpoolRow[]) {
    this.db.query("delete from spooled where seq <= ?").run(seq);
    this.depth.records = Math.max(0, this.depth.records - rows.length);
    const bytes = rows.reduce((sum, row) => sum + (typeof row.bytes === "number" ? row.bytes : 0), 0);
    this.depth.bytes = this.depth.records === 0 ? 0 : Math.max(0, this.depth.bytes - bytes);
    this.depth.oldestAt = this.headSpooledAt();
    this.refusedForSpace = false;
    // Gives the file's free pages back to the disk once the spool is drained.
    if (this.depth.records === 0) this.db.run("pragma incremental_vacuum");
  }

  get isClosed() {
    return this.closed;
  }

  /** Appends accepted but not yet committed. */
  hasPending() {
    return this.pending.length > 0;
  }

  /** Readiness: undefined while the spool has room, otherwise why not. */
  roomProblem(): string | undefined {
    if (this.closed) return "the spool is closed";
    const lowDisk = this.lowDisk();
    if (lowDisk) return lowDisk;
    if (this.refusedForSpace || this.depth.bytes >= this.options.maxBytes)
      return `the spool is full (${this.depth.bytes} of ${this.options.maxBytes} bytes)`;
    return undefined;
  }

  /** Commits what is pending, then closes the file. */
  close() {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // A statement left unfinalized would keep the file open, and locked, after close.
    this.insert.finalize();
    this.db.close();
  }
}
