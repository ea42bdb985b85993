import mqtt from "mqtt";
import { authHeader, type ConsumedRecord } from "./helpers";

/** What a fleet of numbered devices sent, and what the gateway answered. */
export interface OrderedLoad {
  /** Ids the gateway acknowledged (HTTP 202) or the broker took (MQTT PUBACK), each `<source>.<n>`. */
  acknowledged: Set<string>;
  spooled: number;
  statuses: Map<number, number>;
  failures: number;
  stop: () => Promise<void>;
}

const idOf = (source: string, n: number) => `${source}.${n}`;

/**
 * Devices that each post one reading at a time, numbered: a device sends its next only after a 202 for the
 * last, and sends the same one again after a 503 or a lost connection, as a device that keeps order does.
 */
export function orderedHttpLoad(url: () => string, sources: string[], pauseMs = 0): OrderedLoad {
  const load: OrderedLoad = {
    acknowledged: new Set(),
    spooled: 0,
    statuses: new Map(),
    failures: 0,
    stop: async () => {
      running = false;
      await Promise.all(devices);
    },
  };
  let running = true;
  const device = async (source: string) => {
    for (let n = 0; running; ) {
      try {
        const response = await fetch(`${url()}/v1/sensors/readings`, {
          method: "POST",
          headers: { "content-type": "application/json", ...authHeader },
          body: JSON.stringify({
            id: idOf(source, n),
            deviceId: source,
            ts: new Date().toISOString(),
            pm25: n % 500,
          }),
        });
        load.statuses.set(response.status, (load.statuses.get(response.status) ?? 0) + 1);
        if (response.status === 202) {
          const body = (await response.json()) as { spooled?: number };
          load.acknowledged.add(idOf(source, n++));
          if ((body.spooled ?? 0) > 0) load.spooled++;
          if (pauseMs > 0) await Bun.sleep(pauseMs);
        } else {
          await response.arrayBuffer();
          await Bun.sleep(100);
        }
      } catch {
        load.failures++;
        await Bun.sleep(100);
      }
    }
  };
  const devices = sources.map(device);
  return load;
}

/** MQTT devices publishing QoS 1 one message at a time to `<prefix>/sensors/<source>`, numbered likewise. */
export async function orderedMqttLoad(
  brokerUrl: string,
  credentials: { username: string; password: string },
  prefix: string,
  sources: string[],
  pauseMs = 20,
): Promise<OrderedLoad> {
  let running = true;
  const clients = await Promise.all(
    sources.map(() =>
      mqtt.connectAsync(brokerUrl, { clientId: `dev-${crypto.randomUUID()}`, ...credentials }),
    ),
  );
  const load: OrderedLoad = {
    acknowledged: new Set(),
    spooled: 0,
    statuses: new Map(),
    failures: 0,
    stop: async () => {
      running = false;
      await Promise.all(devices);
      await Promise.all(clients.map((client) => client.endAsync()));
    },
  };
  const device = async (source: string, index: number) => {
    const client = clients[index] as mqtt.MqttClient;
    for (let n = 0; running; n++) {
      const payload = JSON.stringify({ id: idOf(source, n), ts: new Date().toISOString(), pm25: n % 500 });
      await client.publishAsync(`${prefix}/sensors/${source}`, payload, { qos: 1 });
      load.acknowledged.add(idOf(source, n));
      await Bun.sleep(pauseMs);
    }
  };
  const devices = sources.map(device);
  return load;
}

/**
 * Per source, the numbers of its records in the order Kafka holds them, first copies only (a record can be
 * there twice: at least once), and the sources whose numbers go backwards.
 */
export function orderPerSource(records: ConsumedRecord[], ids: Set<string>) {
  const seen = new Set<string>();
  const numbers = new Map<string, number[]>();
  for (const record of records) {
    const id = record.value.id as string;
    if (!ids.has(id) || seen.has(id)) continue;
    seen.add(id);
    const dot = id.lastIndexOf(".");
    const source = id.slice(0, dot);
    const list = numbers.get(source) ?? [];
    if (list.length === 0) numbers.set(source, list);
    list.push(Number(id.slice(dot + 1)));
  }
  const backwards = [...numbers].filter(([, list]) =>
    list.some((n, i) => i > 0 && n < (list[i - 1] as number)),
  );
  return { seen, backwards: backwards.map(([source, list]) => ({ source, numbers: list.join(",") })) };
}
