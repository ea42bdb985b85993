import { type Db, databaseError } from "../db/client";
import { advisoryLocks } from "../db/locks";
import type { Ingest } from "../ingest/pipeline";
import { KafkaUnavailable } from "../kafka/publisher";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { type ConnectorConfig, parseDuration } from "./config";
import { createFetcher, PollFailure, redactUrl } from "./fetch";
import { createQuota, type Usage } from "./quota";
import { type Page, sourceOf } from "./sources";

const MAX_BACKOFF_MS = 300_000;
/** Advisory lock space of connectors: (this, hashtext(name)), so that each connector polls on one instance. */
const LOCK_SPACE = 72_831;

export interface ConnectorStatus {
  name: string;
  type: ConnectorConfig["type"];
  kind: string;
  every: string;
  /** polling: this instance is polling now; idle: it polls at nextRun; standby: another instance holds it. */
  state: "idle" | "polling" | "waiting-quota" | "standby";
  nextRun: string | null;
  lastRun: string | null;
  lastSuccess: string | null;
  lastError: string | null;
  lastRecords: number;
  quota: Usage[];
}

/** The next slot after `after`: a fixed period from the first one, or the cron expression's next match. */
export function nextSlot(every: string, after: Date, first: Date): Date {
  const period = parseDuration(every);
  if (period === undefined) return Bun.cron.parse(every, after) ?? new Date(after.getTime() + 86_400_000);
  const elapsed = after.getTime() - first.getTime();
  return new Date(first.getTime() + (Math.floor(elapsed / period) + 1) * period);
}

const jitter = (ms: number) => Math.round(ms * (0.8 + 0.4 * Math.random()));

/**
 * The connectors role: each connector polls on its schedule, never twice at once (an overrunning poll makes
 * the next slot be skipped), on exactly one instance of the deployment (a PostgreSQL advisory lock held on a
 * connection of its own; when that instance dies its lock goes with its connection and another takes over at
 * its next slot), within its quotas, and sends what it gets through the same path as every pushed record.
 */
export function createConnectors(deps: {
  connectors: ConnectorConfig[];
  db: Db;
  /** Where the connectors' locks are taken, on a connection of their own. */
  databaseUrl: string;
  ingest: Ingest;
  logger: Logger;
  metrics: Metrics;
}) {
  const { db, ingest, logger, metrics } = deps;
  let stopping = false;
  const locks = advisoryLocks(deps.databaseUrl, LOCK_SPACE);
  const started = new Date();

  const connectors = deps.connectors.map((config) => {
    const source = sourceOf(config);
    const secrets = [
      ...("apiKey" in config ? [config.apiKey] : []),
      ...Object.values(config.type === "http" ? config.headers : {}),
    ].filter((secret) => secret.length >= 4);
    const status: ConnectorStatus = {
      name: config.name,
      type: config.type,
      kind: source.kind.name,
      every: config.every,
      // Until it holds the connector's lock, this instance does not poll it.
      state: "standby",
      nextRun: null,
      lastRun: null,
      lastSuccess: null,
      lastError: null,
      lastRecords: 0,
      quota: [],
    };
    return {
      config,
      status,
      source,
      fetcher: createFetcher(config.timeoutMs),
      quota: createQuota(db, config.name, {
        minute: config.maxPerMinute,
        day: config.maxPerDay,
        month: config.maxPerMonth,
      }),
      /** No message leaves with a key in it, whatever an API echoes back. */
      scrub: (text: string) =>
        secrets.reduce((clean, secret) => clean.replaceAll(secret, "[redacted]"), text),
      failures: 0,
      timer: undefined as Timer | undefined,
      running: undefined as Promise<void> | undefined,
    };
  });
  type Connector = (typeof connectors)[number];

  /** Whether this instance holds the connector's lock, taking it when it is free. */
  async function own(name: string): Promise<boolean> {
    try {
      return await locks.take(name);
    } catch (error) {
      logger.warn("connector lock unavailable", { connector: name, error: (error as Error).message });
      return false;
    }
  }

  /** Waits `ms` unless the deadline comes first; false when it would. */
  async function waitBefore(deadline: number, ms: number) {
    if (stopping || Date.now() + ms >= deadline) return false;
    await Bun.sleep(ms);
    return !stopping;
  }

  /** One request of a poll: a call from the quota, then the API, retried as it allows before the next slot. */
  async function call(
    connector: Connector,
    request: Parameters<Connector["fetcher"]["fetchJson"]>[0],
    deadline: number,
  ) {
    for (;;) {
      const taken = await connector.quota.take();
      if (!taken.granted) {
        connector.status.state = "waiting-quota";
        const message = `at its ${taken.period} quota until ${taken.until.toISOString()}`;
        logger.warn(`connector ${message}`, { connector: connector.config.name });
        if (!(await waitBefore(deadline, taken.until.getTime() - Date.now() + 100)))
          throw new QuotaSpent(message);
        connector.status.state = "polling";
        continue;
      }
      try {
        const answer = await connector.fetcher.fetchJson(request);
        connector.failures = 0;
        return answer;
      } catch (error) {
        if (!(error instanceof PollFailure) || !error.retriable) throw error;
        const wait = error.retryAfterMs ?? jitter(Math.min(MAX_BACKOFF_MS, 1000 * 2 ** connector.failures++));
        logger.warn("connector request failed; retrying", {
          connector: connector.config.name,
          error: connector.scrub(error.message),
          retryInMs: wait,
        });
        if (!(await waitBefore(deadline, wait))) throw error;
      }
    }
  }

  /** Sends a page's records on to Kafka, retrying while Kafka cannot take them. */
  async function deliver(connector: Connector, items: unknown[], deadline: number) {
    const options = { via: "poll" as const, origin: connector.config.name };
    for (let attempt = 0; ; attempt++) {
      try {
        const { envelopes } = await ingest.records(
          connector.source.kind,
          items.map((value) => ({ value })),
          options,
        );
        return envelopes.length;
      } catch (error) {
        if (
          !(error instanceof KafkaUnavailable) ||
          !(await waitBefore(deadline, Math.min(250 * 2 ** attempt, 5000)))
        )
          throw error;
      }
    }
  }

  async function poll(connector: Connector, deadline: number) {
    const { config, status, source } = connector;
    status.state = "polling";
    status.lastRun = new Date().toISOString();
    let records = 0;
    let changed = false;
    let previous: Page | undefined;
    try {
      for (let request = source.next(); request; request = source.next(previous)) {
        const answer = await call(connector, request, deadline);
        const index = previous ? previous.index + 1 : 0;
        previous = answer.notModified
          ? { request, body: undefined, headers: new Headers(), index }
          : { request, body: answer.body, headers: answer.headers, index };
        if (answer.notModified) continue;
        changed = true;
        const items = source.records(previous);
        try {
          if (items.length > 0) records += await deliver(connector, items, deadline);
        } catch (error) {
          // Not in Kafka: the page must be fetched again, not answered 304.
          connector.fetcher.forget(request.url);
          throw error;
        }
      }
      status.lastSuccess = new Date().toISOString();
      status.lastError = null;
      status.lastRecords = records;
      metrics.connectorPolls.inc({ connector: config.name, outcome: changed ? "ok" : "not-modified" });
      metrics.connectorRecords.inc({ connector: config.name }, records);
      metrics.connectorLastSuccess.set({ connector: config.name }, Date.now() / 1000);
      logger.info("connector polled", { connector: config.name, records });
    } catch (error) {
      const outcome = error instanceof QuotaSpent ? "quota" : "failed";
      status.lastError = connector.scrub(error instanceof PollFailure ? error.message : databaseError(error));
      metrics.connectorPolls.inc({ connector: config.name, outcome });
      logger.warn("connector poll failed", { connector: config.name, error: status.lastError });
    } finally {
      status.state = "idle";
    }
  }

  function schedule(connector: Connector, slot: Date) {
    if (stopping) return;
    connector.status.nextRun = slot.toISOString();
    connector.timer = setTimeout(() => void run(connector, slot), Math.max(0, slot.getTime() - Date.now()));
  }

  async function run(connector: Connector, slot: Date) {
    const next = nextSlot(connector.config.every, slot, started);
    if (connector.running) {
      metrics.connectorPolls.inc({ connector: connector.config.name, outcome: "skipped" });
      logger.warn("connector still polling; slot skipped", {
        connector: connector.config.name,
        slot: slot.toISOString(),
      });
    } else if (await own(connector.config.name)) {
      connector.running = poll(connector, next.getTime()).finally(() => {
        connector.running = undefined;
      });
    } else {
      connector.status.state = "standby";
    }
    schedule(connector, next);
  }

  return {
    statuses: async (): Promise<ConnectorStatus[]> =>
      Promise.all(
        connectors.map(async (connector) => ({
          ...connector.status,
          quota: await connector.quota.usage().catch(() => []),
        })),
      ),
    start() {
      for (const connector of connectors) {
        // A period starts now; a cron expression at its next match.
        const every = connector.config.every;
        const first = parseDuration(every) !== undefined ? started : nextSlot(every, started, started);
        logger.info("connector scheduled", {
          connector: connector.config.name,
          first: first.toISOString(),
          url: redactUrl(connector.source.next()?.url ?? ""),
        });
        schedule(connector, first);
      }
    },
    /** Takes no new poll, lets running ones end (up to the timeout), then gives the locks back. */
    async stop(timeoutMs = 5000) {
      stopping = true;
      for (const connector of connectors) clearTimeout(connector.timer);
      const running = connectors.flatMap((connector) => (connector.running ? [connector.running] : []));
      await Promise.race([Promise.allSettled(running), Bun.sleep(timeoutMs)]);
      await locks.releaseAll();
    },
  };
}

class QuotaSpent extends Error {}

export type Connectors = ReturnType<typeof createConnectors>;
