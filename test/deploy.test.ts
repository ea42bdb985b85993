import { describe, expect, test } from "bun:test";
import { configSchema } from "../src/config";
import { createMetrics } from "../src/metrics";
import { simulatorEnv } from "../src/simulators/run";

// Docker's engine does not run here, so the files are read and held against the code instead.
const root = `${import.meta.dir}/..`;
// biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document
const compose: any = Bun.YAML.parse(await Bun.file(`${root}/docker-compose.yml`).text());
const dockerfile = await Bun.file(`${root}/Dockerfile`).text();
const mosquittoConf = await Bun.file(`${root}/deploy/mosquitto/mosquitto.conf`).text();
const services: Record<string, Record<string, unknown>> = compose.services;
const sluiceServices = ["gateway", "sink", "archive"];
const env = (name: string) => (services[name]?.environment ?? {}) as Record<string, string | number>;

describe("docker-compose.yml", () => {
  test("has Kafka, PostgreSQL, Redis, Mosquitto, MinIO, the gateway, the sink, the archive, and simulators in a profile", () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        "archive",
        "minio",
        "minio-bucket",
        "gateway",
        "grafana",
        "kafka",
        "mosquitto",
        "mosquitto-users",
        "postgres",
        "prometheus",
        "redis",
        "simulators",
        "sink",
      ].sort(),
    );
    expect(services.simulators?.profiles).toEqual(["simulators"]);
    expect(env("gateway").ROLES).toBe("gateway");
    expect(env("sink").ROLES).toBe("sink");
    expect(env("archive").ROLES).toBe("archive");
  });

  test("every image is pinned to a version", () => {
    for (const [name, service] of Object.entries(services)) {
      const image = String(service.image ?? "");
      // A version number, or MinIO's dated release names.
      expect(image, name).toMatch(/^[\w./-]+:(v?\d|RELEASE\.\d{4}-)[\w.-]*$/);
      expect(image, name).not.toContain(":latest");
    }
    expect(services.kafka?.image).toMatch(/^apache\/kafka:3\.9\./);
  });

  test("every variable set for Sluice exists in the config schema, and parses", () => {
    const known = new Set(Object.keys(configSchema.shape));
    for (const name of sluiceServices) {
      const variables = env(name);
      for (const variable of Object.keys(variables))
        expect(known.has(variable), `${name}: ${variable}`).toBe(true);
      const parsed = configSchema.safeParse(
        Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
      );
      expect(parsed.success, name).toBe(true);
    }
    for (const variable of Object.keys(env("simulators"))) expect(simulatorEnv).toContain(variable);
  });

  test("ports and addresses agree between services, config and the shipped Mosquitto config", () => {
    const gateway = env("gateway");
    expect(services.gateway?.ports).toEqual([`${gateway.PORT}:${gateway.PORT}`]);
    expect(dockerfile).toContain(`EXPOSE ${gateway.PORT}`);
    expect(String(env("simulators").SLUICE_URL)).toBe(`http://gateway:${gateway.PORT}`);

    const kafka = env("kafka");
    const [kafkaHost, kafkaPort] = String(gateway.KAFKA_BROKERS).split(":");
    expect(kafka.KAFKA_ADVERTISED_LISTENERS).toBe(`PLAINTEXT://${kafkaHost}:${kafkaPort}`);
    expect(kafka.KAFKA_LISTENERS).toContain(`PLAINTEXT://:${kafkaPort}`);
    expect(kafka.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe("false");

    const database = new URL(String(gateway.DATABASE_URL));
    const postgres = env("postgres");
    expect(database.hostname).toBe("postgres");
    expect(database.port).toBe("5432");
    expect([database.username, database.password, database.pathname.slice(1)]).toEqual([
      String(postgres.POSTGRES_USER),
      String(postgres.POSTGRES_PASSWORD),
      String(postgres.POSTGRES_DB),
    ]);
    expect(new URL(String(gateway.REDIS_URL)).host).toBe("redis:6379");

    const mqttPort = mosquittoConf.match(/^listener (\d+)$/m)?.[1];
    expect(String(gateway.MQTT_URL)).toBe(`mqtt://mosquitto:${mqttPort}`);
    expect(services.mosquitto?.ports).toEqual([`${mqttPort}:${mqttPort}`]);
    expect(services.mosquitto?.volumes).toContain(
      "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro",
    );
    expect(mosquittoConf).toMatch(/^persistence_location \/mosquitto\/data\/$/m);
  });

  test("the archive writes to the bucket MinIO's setup creates, with MinIO's credentials", () => {
    const archive = env("archive");
    const url = new URL(String(archive.ARCHIVE_URL));
    expect(url.protocol).toBe("s3:");
    const setup = String((services["minio-bucket"]?.command as string[] | undefined)?.[0]);
    expect(setup).toContain(`mc mb --ignore-existing local/${url.hostname}`);
    expect(setup).toContain(`mc alias set local ${archive.S3_ENDPOINT} ${archive.AWS_ACCESS_KEY_ID} `);
    expect(env("minio").MINIO_ROOT_USER).toBe(archive.AWS_ACCESS_KEY_ID);
    expect(archive.AWS_SECRET_ACCESS_KEY).toBe(env("minio").MINIO_ROOT_PASSWORD);
    expect(new URL(String(archive.S3_ENDPOINT)).host).toBe(
      `minio:${String(services.minio?.ports).split(":")[0]}`,
    );
    const dependsOn = services.archive?.depends_on as Record<string, { condition: string }>;
    expect(dependsOn).toEqual({
      kafka: { condition: "service_healthy" },
      "minio-bucket": { condition: "service_completed_successfully" },
    });
  });

  test("Sluice waits for healthy dependencies; every dependency has a health check; data lives in volumes", () => {
    for (const name of ["gateway", "sink"]) {
      const dependsOn = services[name]?.depends_on as Record<string, { condition: string }>;
      expect(Object.keys(dependsOn).sort(), name).toEqual(["kafka", "mosquitto", "postgres", "redis"]);
      for (const dependency of Object.values(dependsOn)) expect(dependency.condition).toBe("service_healthy");
    }
    for (const name of ["kafka", "postgres", "redis", "mosquitto", "minio"])
      expect(services[name]?.healthcheck, name).toBeDefined();
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    expect(Object.keys(compose.volumes).sort()).toEqual([
      "kafka-data",
      "minio-data",
      "mosquitto-data",
      "mosquitto-users",
      "postgres-data",
    ]);
  });

  test("Mosquitto requires credentials; the files the config names are where Compose puts them; the ACL fits", async () => {
    expect(mosquittoConf).toMatch(/^allow_anonymous false$/m);
    const passwordFile = mosquittoConf.match(/^password_file (\S+)$/m)?.[1] ?? "";
    const aclFile = mosquittoConf.match(/^acl_file (\S+)$/m)?.[1] ?? "";
    const mounts = ((services.mosquitto?.volumes ?? []) as string[]).map((volume) => volume.split(":")[1]);
    expect(mounts.some((mount) => passwordFile.startsWith(`${mount}/`))).toBe(true);
    expect(mounts).toContain(aclFile);
    expect(services["mosquitto-users"]?.volumes).toEqual(["mosquitto-users:/mosquitto/users"]);
    const acl = await Bun.file(`${root}/deploy/mosquitto/acl`).text();
    const prefix = String(env("simulators").MQTT_TOPIC_PREFIX);
    expect(acl).toContain(`user ${env("gateway").MQTT_USERNAME}\ntopic read ${prefix}/#`);
    expect(acl).toContain(`user ${env("simulators").MQTT_USERNAME}\ntopic write ${prefix}/#`);
    expect(acl).toContain(`pattern write ${prefix}/+/%u`);
  });

  test("the shipped Mosquitto config cannot silently drop queued QoS 1 messages", () => {
    expect(mosquittoConf).toMatch(/^persistence true$/m);
    expect(mosquittoConf).toMatch(/^max_queued_messages 0$/m);
    expect(mosquittoConf).toMatch(/^max_queued_bytes 0$/m);
  });
});

describe("observability profile", () => {
  test("Prometheus scrapes the gateway, the sink and the archive where they listen", async () => {
    expect(services.prometheus?.profiles).toEqual(["observability"]);
    expect(services.grafana?.profiles).toEqual(["observability"]);
    // biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document
    const prometheus: any = Bun.YAML.parse(await Bun.file(`${root}/deploy/prometheus/prometheus.yml`).text());
    const targets = prometheus.scrape_configs.flatMap((job: { static_configs: { targets: string[] }[] }) =>
      job.static_configs.flatMap((config) => config.targets),
    );
    expect(targets.sort()).toEqual(sluiceServices.map((name) => `${name}:${env(name).PORT}`).sort());
  });

  test("every metric the Grafana dashboard queries is one Sluice exposes", async () => {
    const dashboard = await Bun.file(`${root}/deploy/grafana/dashboards/sluice.json`).json();
    const queried = new Set<string>(
      JSON.stringify(dashboard)
        .match(/sluice_[a-z0-9_]+/g)
        ?.map((name) => name.replace(/_(bucket|sum|count)$/, "")) ?? [],
    );
    const exposed = new Set((await createMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name));
    expect(queried.size).toBeGreaterThan(10);
    for (const name of queried) expect(exposed.has(name), name).toBe(true);
  });
});

describe("Dockerfile", () => {
  test("builds on the official Bun image at the version the scripts install, and runs as a non-root user", async () => {
    const scriptsBun = (await Bun.file(`${root}/scripts/lib.sh`).text()).match(/bun@([\d.]+)/)?.[1];
    const images = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((match) => match[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toBe(`oven/bun:${scriptsBun}-slim`);
    expect(dockerfile).toMatch(/^USER bun$/m);
    expect(dockerfile).toContain("--frozen-lockfile");
  });
});
