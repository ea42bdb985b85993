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
        "kafka-1",
        "kafka-2",
        "kafka-3",
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
      "kafka-1-data",
      "kafka-2-data",
      "kafka-3-data",
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

describe("ha profile", () => {
  const nodes = Object.entries(services)
    .filter(([, service]) => (service.profiles as string[] | undefined)?.includes("ha"))
    .map(([name]) => {
      const variables = env(name);
      const listener = (listenerName: string) =>
        Number(
          String(variables.KAFKA_LISTENERS).match(new RegExp(`(?:^|,)${listenerName}://:(\\d+)(?:,|$)`))?.[1],
        );
      return {
        name,
        env: variables,
        id: Number(variables.KAFKA_NODE_ID),
        port: listener("PLAINTEXT"),
        controllerPort: listener("CONTROLLER"),
      };
    })
    .sort((a, b) => a.id - b.id);

  test("three Kafka nodes, only in the profile: the default services neither change nor depend on them", () => {
    expect(nodes.map((node) => node.name)).toEqual(["kafka-1", "kafka-2", "kafka-3"]);
    for (const node of nodes) expect(services[node.name]?.profiles, node.name).toEqual(["ha"]);
    for (const [name, service] of Object.entries(services)) {
      const dependsOn = Object.keys((service.depends_on ?? {}) as Record<string, unknown>);
      for (const node of nodes) expect(dependsOn, name).not.toContain(node.name);
    }
  });

  test("each node is a broker and a controller with an id of its own, one cluster id, the voters where they listen", () => {
    expect(nodes.map((node) => node.id)).toEqual([1, 2, 3]);
    const voters = nodes.map((node) => `${node.id}@${node.name}:${node.controllerPort}`).join(",");
    const clusterIds = new Set(nodes.map((node) => node.env.CLUSTER_ID));
    expect(clusterIds.size).toBe(1);
    const [clusterId] = [...clusterIds];
    // What kafka-storage random-uuid prints: 16 bytes in unpadded base64url.
    expect(String(clusterId)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    expect(Buffer.from(String(clusterId), "base64url")).toHaveLength(16);
    for (const node of nodes) {
      expect(node.env.KAFKA_PROCESS_ROLES, node.name).toBe("broker,controller");
      expect(node.port, node.name).toBeGreaterThan(0);
      expect(node.controllerPort, node.name).toBeGreaterThan(0);
      expect(node.env.KAFKA_ADVERTISED_LISTENERS, node.name).toBe(`PLAINTEXT://${node.name}:${node.port}`);
      expect(node.env.KAFKA_CONTROLLER_QUORUM_VOTERS, node.name).toBe(voters);
      expect(node.env.KAFKA_CONTROLLER_LISTENER_NAMES, node.name).toBe("CONTROLLER");
      expect(String(node.env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP).split(",").sort(), node.name).toEqual([
        "CONTROLLER:PLAINTEXT",
        "PLAINTEXT:PLAINTEXT",
      ]);
      expect(node.env.KAFKA_INTER_BROKER_LISTENER_NAME, node.name).toBe("PLAINTEXT");
    }
  });

  test("replication factor 3, min.insync.replicas 2, no unclean leader election, no auto-created topics", () => {
    for (const node of nodes) {
      const settings = Object.fromEntries(
        [
          "KAFKA_DEFAULT_REPLICATION_FACTOR",
          "KAFKA_MIN_INSYNC_REPLICAS",
          "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
          "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
          "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
          "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE",
          "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
          "KAFKA_NUM_PARTITIONS",
        ].map((name) => [name, String(node.env[name])]),
      );
      expect(settings, node.name).toEqual({
        KAFKA_DEFAULT_REPLICATION_FACTOR: "3",
        KAFKA_MIN_INSYNC_REPLICAS: "2",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "3",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "3",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: "2",
        KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE: "false",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false",
        KAFKA_NUM_PARTITIONS: "3",
      });
    }
  });

  test("the kafka service's image, a health check on each node's own broker id, a volume of its own for its log", () => {
    const volumes = new Set<string>();
    for (const node of nodes) {
      const service = services[node.name] ?? {};
      expect(service.image, node.name).toBe(services.kafka?.image);
      const check = ((service.healthcheck as { test?: string[] } | undefined)?.test ?? []).join(" ");
      expect(check, node.name).toContain(
        `kafka-broker-api-versions.sh --bootstrap-server localhost:${node.port}`,
      );
      expect(check, node.name).toContain(`(id: ${node.id} rack`);
      const mounts = (service.volumes ?? []) as string[];
      expect(mounts, node.name).toHaveLength(1);
      const [volume = "", target] = String(mounts[0]).split(":");
      expect(target, node.name).toBe(String(node.env.KAFKA_LOG_DIRS));
      expect(Object.keys(compose.volumes), node.name).toContain(volume);
      volumes.add(volume);
    }
    expect(volumes.size).toBe(nodes.length);
    const single = ((services.kafka?.volumes ?? []) as string[]).map((mount) => mount.split(":")[0]);
    for (const volume of single) expect(volumes.has(String(volume))).toBe(false);
  });

  test("the settings the comment gives Sluice name every node and parse; one node may fail", async () => {
    const text = await Bun.file(`${root}/docker-compose.yml`).text();
    const brokers = text.match(/KAFKA_BROKERS=(\S+)/)?.[1];
    const replication = Number(text.match(/KAFKA_REPLICATION_FACTOR=(\d+)/)?.[1]);
    expect(brokers).toBe(nodes.map((node) => `${node.name}:${node.port}`).join(","));
    expect(replication).toBe(nodes.length);
    expect(Number(nodes[0]?.env.KAFKA_MIN_INSYNC_REPLICAS)).toBe(replication - 1);
    for (const name of sluiceServices) {
      const variables = {
        ...env(name),
        KAFKA_BROKERS: String(brokers),
        KAFKA_REPLICATION_FACTOR: String(replication),
      };
      const parsed = configSchema.safeParse(
        Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
      );
      expect(parsed.success, name).toBe(true);
      expect(parsed.data?.KAFKA_BROKERS, name).toHaveLength(3);
      expect(parsed.data?.KAFKA_REPLICATION_FACTOR, name).toBe(3);
    }
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
