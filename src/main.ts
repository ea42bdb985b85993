import { ConfigError, loadConfig } from "./config";
import { createLogger } from "./log";
import { createRuntime } from "./runtime";

const usage = `usage: sluice <command>
  start     run the roles named in ROLES (default: gateway)
  help      this text`;

async function start() {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL);
  const runtime = createRuntime(config, logger);
  const server = Bun.serve({ port: config.PORT, hostname: config.HOST, fetch: runtime.app.fetch });
  logger.info("gateway listening", {
    url: server.url.href,
    roles: config.ROLES,
    docs: `${server.url.href}docs`,
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
    await server.stop();
    await runtime.close();
    clearTimeout(deadline);
    logger.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

const command = process.argv[2] ?? "start";
try {
  if (command === "start") await start();
  else {
    console.log(usage);
    process.exit(command === "help" || command === "--help" ? 0 : 2);
  }
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
