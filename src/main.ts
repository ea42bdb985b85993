import { parseArgs } from "node:util";
import { createKey, listKeys, parseScopes, revokeKey } from "./auth/keys";
import { ConfigError, loadConfig } from "./config";
import { ConnectorsFileError, loadConnectors } from "./connectors/config";
import { createDb, migrateDatabase } from "./db/client";
import { SchemaMismatch, verifySchema } from "./db/verify";
import { createLogger } from "./log";
import { superviseWorkers, workerIndex, workerMetrics } from "./workers";

const usage = `usage: sluice <command>
  start     apply pending migrations, then run the roles named in ROLES (default: gateway,sink, plus
            connectors when CONNECTORS_FILE is set and archive when ARCHIVE_URL is)
  migrate   create the database if missing and apply pending migrations
  simulate  run device simulators against a gateway (simulate --help)
  import    stream a CSV, NDJSON or JSON file (or stdin) to a gateway in batches (import --help)
  replay    publish the archive's records (ARCHIVE_URL) to Kafka again, ids kept (replay --help)
  keys create --scopes <list> [--name <n>] | keys list | keys revoke <id>
            manage API keys; scopes: ingest:<kind>, ingest:*, read:<kind>, read:*, admin
  help      this text`;

async function migrate(logger: ReturnType<typeof createLogger>, url: string, attempts: number) {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrateDatabase(url, logger);
      return;
    } catch (error) {
      if (attempt >= attempts) throw error;
      logger.warn("PostgreSQL not ready for migrations, retrying", { error: (error as Error).message });
      await Bun.sleep(2000);
    }
  }
}

async function keysCommand(args: string[]): Promise<number> {
  const config = loadConfig();
  const logger = createLogger("warn");
  await migrate(logger, config.DATABASE_URL, 1);
  const { db, client } = createDb(config.DATABASE_URL, 1);
  try {
    const [action, ...rest] = args;
    if (action === "create") {
      const { values } = parseArgs({
        args: rest,
        options: { scopes: { type: "string" }, name: { type: "string" } },
      });
      const { id, key } = await createKey(db, parseScopes(values.scopes ?? ""), values.name);
      console.log(`created ${id}${values.name ? ` (${values.name})` : ""} with scopes ${values.scopes}`);
      console.log("the key is shown once, on the next line:");
      console.log(key);
      return 0;
    }
    if (action === "list") {
      for (const key of await listKeys(db)) {
        const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : "active";
        console.log(
          `${key.id}\t${key.name ?? ""}\t${key.scopes.join(",")}\t${key.createdAt.toISOString()}\t${state}`,
        );
      }
      return 0;
    }
    if (action === "revoke" && rest[0]) {
      const revoked = await revokeKey(db, rest[0]);
      console.log(revoked ? `revoked ${rest[0]}` : `no active key ${rest[0]}`);
      return revoked ? 0 : 1;
    }
    console.error(usage);
    return 2;
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  } finally {
    await client.end();
  }
}

async function connectorsOf(config: ReturnType<typeof loadConfig>) {
  if (!config.CONNECTORS_FILE)
    throw new ConnectorsFileError("ROLES includes connectors, but CONNECTORS_FILE is not set");
  return loadConnectors(config.CONNECTORS_FILE);
}

async function start() {
  const config = loadConfig();
  const worker = workerIndex();
  // The other workers are gateways only: one sink group member, one poller, one archive per WORKERS.
  if (worker > 0) {
    config.ROLES = config.ROLES.filter((role) => role === "gateway");
    config.MQTT_CLIENT_ID = `${config.MQTT_CLIENT_ID}-w${worker}`;
  }
  const logger = createLogger(config.LOG_LEVEL);
  // A bad connectors file stops the start before anything else, with the path of each error.
  const connectors = config.ROLES.includes("connectors") ? await connectorsOf(config) : undefined;
  // An archive-only process needs Kafka and the archive's storage, not PostgreSQL; the workers after the
  // first find the database migrated.
  if (worker === 0 && config.ROLES.some((role) => role !== "archive")) {
    await migrate(logger, config.DATABASE_URL, 15);
    // Never a 202 for a record that cannot be stored: every registered kind's tables must be there.
    await verifySchema(config.DATABASE_URL);
  }
  // Loaded here, not at the top: the other commands (import, simulate, keys) do without Kafka, MQTT and hono.
  const { createRuntime } = await import("./runtime");
  const runtime = createRuntime(config, logger, { connectors });
  const server = Bun.serve({
    port: config.PORT,
    hostname: config.HOST,
    reusePort: config.WORKERS > 1,
    fetch: runtime.app.fetch,
  });
  const workers =
    worker === 0 && config.WORKERS > 1
      ? superviseWorkers(config.WORKERS, runtime.metrics.registry, logger)
      : undefined;
  if (workers) runtime.metrics.exposition = workers.metrics;
  if (worker > 0) runtime.metrics.exposition = workerMetrics(runtime.metrics.registry);
  logger.info("gateway listening", {
    url: server.url.href,
    roles: config.ROLES,
    docs: `${server.url.href}docs`,
    ...(config.WORKERS > 1 ? { worker, workers: config.WORKERS } : {}),
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping", { signal });
    const deadline = setTimeout(() => {
      logger.error("shutdown took longer than 10 s; exiting");
      process.exit(1);
    }, 10_000);
    await Promise.all([workers?.stop(), server.stop()]);
    await runtime.close();
    clearTimeout(deadline);
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  if (worker === 0) process.on("SIGINT", () => void stop("SIGINT"));
  else {
    // Ctrl-C reaches the whole process group: worker 0 stops the others itself, in order.
    process.on("SIGINT", () => {});
    process.on("disconnect", () => void stop("worker 0 is gone"));
  }
}

const command = process.argv[2] ?? "start";
try {
  if (command === "start") await start();
  else if (command === "simulate") {
    const { runSimulateCommand } = await import("./simulators/run");
    process.exit(await runSimulateCommand(process.argv.slice(3)));
  } else if (command === "import") {
    const { runImportCommand } = await import("./import/run");
    process.exit(await runImportCommand(process.argv.slice(3)));
  } else if (command === "replay") {
    const { runReplayCommand } = await import("./archive/replay");
    process.exit(await runReplayCommand(process.argv.slice(3)));
  } else if (command === "keys") {
    process.exit(await keysCommand(process.argv.slice(3)));
  } else if (command === "migrate") {
    const config = loadConfig();
    await migrate(createLogger(config.LOG_LEVEL), config.DATABASE_URL, 1);
    console.log("migrations applied");
  } else {
    console.log(usage);
    process.exit(command === "help" || command === "--help" ? 0 : 2);
  }
} catch (error) {
  if (
    error instanceof ConfigError ||
    error instanceof SchemaMismatch ||
    error instanceof ConnectorsFileError
  ) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
