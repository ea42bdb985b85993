// Publishes COUNT QoS 1 sensor readings to `${PREFIX}/sensors/<device>` with at most WINDOW unacknowledged,
// over CONNECTIONS publisher connections, then prints the seconds it took as JSON.
import mqtt from "mqtt";

const url = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const count = Number(process.env.COUNT ?? 20000);
const window = Number(process.env.WINDOW ?? 500);
const connections = Number(process.env.CONNECTIONS ?? 2);
const prefix = process.env.PREFIX ?? "sluice/v1";
const ts = Date.now();

const clients = await Promise.all(
  Array.from({ length: connections }, (_, i) =>
    mqtt.connectAsync(url, {
      clientId: `bench-pub-${i}-${ts}`,
      username: process.env.MQTT_USERNAME,
      password: process.env.MQTT_PASSWORD,
    }),
  ),
);
let next = 0;
const started = performance.now();
await Promise.all(
  clients.map(async (client) => {
    const inFlight = new Set<Promise<unknown>>();
    while (next < count) {
      const i = next++;
      const payload = `{"ts":${ts},"temperature":${20 + (i % 10)},"humidity":40}`;
      const sent = client.publishAsync(`${prefix}/sensors/bench-${i % 1000}`, payload, { qos: 1 });
      inFlight.add(sent);
      sent.finally(() => inFlight.delete(sent));
      if (inFlight.size >= window / connections) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  }),
);
const seconds = (performance.now() - started) / 1000;
await Promise.all(clients.map((client) => client.endAsync()));
console.log(JSON.stringify({ seconds }));
