import type { MqttClient } from "mqtt";
import type { Sql } from "postgres";
import type { Config } from "../config";
import { advisoryLocks } from "../db/locks";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";

/** Advisory lock space of MQTT sessions: (this, hashtext(clientId)). */
const LOCK_SPACE = 72_832;
/** How often a gateway looks for sessions of gateways that are gone, and retries its own it could not claim. */
const SCAN_MS = 2000;
/** A taken-over session with nothing in flight and no message for this long has been drained. */
const QUIET_MS = 1500;

/** The broker (without credentials) and the shared subscription of a gateway's sessions. */
export function mqttScope(config: Pick<Config, "MQTT_URL" | "MQTT_SHARED_GROUP" | "MQTT_TOPIC_PREFIX">) {
  const url = new URL(config.MQTT_URL);
  return `${url.protocol}//${url.host} $share/${config.MQTT_SHARED_GROUP}/${config.MQTT_TOPIC_PREFIX}/#`;
}

/**
 * Who holds which session of the shared subscription: a gateway takes an advisory lock per session it opens
 * and lists the session in mqtt_sessions. A listed session whose lock is free belongs to a gateway that is gone.
 * Sessions are listed per scope (the broker and the subscription), so that a gateway only ever takes over a
 * session of its own kind: the same messages, into the same topics.
 */
export function sessionRegistry(databaseUrl: string, client: Sql, scope: string) {
  const locks = advisoryLocks(databaseUrl, LOCK_SPACE);
  const lockName = (clientId: string) => `${scope} ${clientId}`;
  return {
    /** Takes the session's lock and lists it; false while another gateway holds it. */
    async claim(clientId: string): Promise<boolean> {
      if (locks.holds(lockName(clientId))) return true;
      if (!(await locks.take(lockName(clientId)))) return false;
      await client`insert into mqtt_sessions (scope, client_id) values (${scope}, ${clientId}) on conflict do nothing`;
      return true;
    },
    /** The listed sessions, but for `own`, that nobody held: now held by this gateway. */
    async orphans(own: Set<string>): Promise<string[]> {
      const listed = await client<{ clientId: string }[]>`
        select client_id as "clientId" from mqtt_sessions where scope = ${scope}`;
      const others = listed.map(({ clientId }) => clientId).filter((clientId) => !own.has(clientId));
      const taken = new Set(await locks.takeFree(others.map(lockName)));
      return others.filter((clientId) => taken.has(lockName(clientId)));
    },
    /** Throws when the locks' connection is gone (they are forgotten then, and claimed again). */
    check: () => locks.check(),
    /** The session has ended: no longer listed, its lock given back. */
    async retire(clientId: string) {
      await client`delete from mqtt_sessions where scope = ${scope} and client_id = ${clientId}`;
      await locks.release(lockName(clientId));
    },
    release: (clientId: string) => locks.release(lockName(clientId)),
    close: () => locks.releaseAll(),
  };
}

export type SessionRegistry = ReturnType<typeof sessionRegistry>;

/** An open MQTT session of the pool and what it is doing. */
export interface Session {
  client: MqttClient;
  /** Messages received and not acknowledged (PUBACK) yet: the broker still holds them. */
  unacknowledged(): number;
  lastMessageAt(): number;
}

/**
 * The gateway's sessions in the shared subscription. Mosquitto gives each session its turn of the group's
 * messages, also a session whose gateway is gone (SIGKILL, a lost host, scaled down): it queues them until that
 * client id connects again, and a persistent session lives for MQTT_SESSION_EXPIRY_SECONDS. So a live gateway
 * takes such a session over: it connects with its client id, unsubscribes so that no new message goes to it,
 * delivers what was queued, and ends it (session expiry 0). Its own sessions it opens once it holds their
 * locks; while PostgreSQL cannot say, it opens them anyway, as MQTT must not wait for the database.
 */
export function createSessionPool(deps: {
  clientIds: string[];
  registry: SessionRegistry | undefined;
  open: (clientId: string, takenOver: boolean) => Session;
  subscription: string;
  logger: Logger;
  metrics: Metrics;
}) {
  const { registry, logger, metrics } = deps;
  const own = new Map<string, Session>();
  const ownIds = new Set(deps.clientIds);
  const takenOver = new Map<string, Session>();
  let stopping = false;
  let warned = false;

  async function claim(clientId: string): Promise<boolean> {
    try {
      return registry ? await registry.claim(clientId) : true;
    } catch (error) {
      if (!warned) logger.warn("MQTT session locks unavailable", { error: (error as Error).message });
      warned = true;
      return true;
    }
  }

  async function openOwn(clientId: string) {
    while (!stopping && !(await claim(clientId))) await Bun.sleep(SCAN_MS);
    if (!stopping) own.set(clientId, deps.open(clientId, false));
  }

  /**
   * Connects to a session of a gateway that is gone, stops new messages going to it, and ends it once every
   * message it held is acknowledged and none has come for a while; cut off before that, it is left as it is.
   */
  function takeOver(clientId: string) {
    logger.warn("taking over the MQTT session of a gateway that is gone", { clientId });
    const session = deps.open(clientId, true);
    takenOver.set(clientId, session);
    const { client } = session;
    let unsubscribedAt: number | undefined;
    let ending = false;
    const end = async (retire: boolean) => {
      clearInterval(watch);
      takenOver.delete(clientId);
      if (retire) await registry?.retire(clientId).catch(() => {});
      else await registry?.release(clientId).catch(() => {});
    };
    const watch = setInterval(() => {
      if (ending || stopping || unsubscribedAt === undefined || !client.connected) return;
      const quietSince = Math.max(unsubscribedAt, session.lastMessageAt());
      if (session.unacknowledged() > 0 || performance.now() - quietSince < QUIET_MS) return;
      ending = true;
      client.end(false, { reasonCode: 0, properties: { sessionExpiryInterval: 0 } }, () => {
        logger.info("MQTT session taken over, drained and ended", { clientId });
        void end(true);
      });
    }, 250);
    client.on("connect", () => {
      metrics.mqttSessionsTakenOver.inc();
      client.unsubscribe(deps.subscription, (error) => {
        if (!error) unsubscribedAt = performance.now();
      });
    });
    client.on("close", () => {
      if (ending) return;
      ending = true;
      client.end(true);
      void end(false);
    });
  }

  /** Sessions seen free at a scan, by when: taken over only when still free a scan later. */
  const seenFree = new Map<string, number>();

  async function scan() {
    if (stopping || !registry) return;
    try {
      await registry.check();
      // An own session whose lock was lost (the database restarted) is claimed again; if another gateway took
      // it over meanwhile, it is theirs until they have ended it.
      let claimedAll = true;
      for (const [clientId, session] of own) {
        if (await registry.claim(clientId)) continue;
        claimedAll = false;
        own.delete(clientId);
        session.client.end(true);
        void openOwn(clientId);
      }
      // Right after the database came back, live gateways have not claimed theirs again yet: a session is taken
      // over only when it was free at two scans in a row.
      const free = claimedAll ? await registry.orphans(ownIds) : [];
      const now = performance.now();
      for (const clientId of free) {
        const since = seenFree.get(clientId);
        if (since !== undefined && now - since >= SCAN_MS / 2 && !stopping) {
          seenFree.delete(clientId);
          takeOver(clientId);
        } else {
          seenFree.set(clientId, since ?? now);
          await registry.release(clientId);
        }
      }
      for (const clientId of seenFree.keys()) if (!free.includes(clientId)) seenFree.delete(clientId);
      warned = false;
    } catch (error) {
      if (!warned) logger.warn("MQTT session scan failed", { error: (error as Error).message });
      warned = true;
    }
  }

  for (const clientId of deps.clientIds) void openOwn(clientId);
  let scanning: Promise<void> | undefined;
  const timer = setInterval(() => {
    scanning ??= scan().finally(() => {
      scanning = undefined;
    });
  }, SCAN_MS);

  return {
    own: () => [...own.values()].map((session) => session.client),
    all: () => [...own.values(), ...takenOver.values()].map((session) => session.client),
    size: deps.clientIds.length,
    /** Ends every connection, keeping the sessions (a restart, or another gateway, takes them up). */
    async close(end: (client: MqttClient) => Promise<void>) {
      stopping = true;
      clearInterval(timer);
      await scanning;
      await Promise.all([...own.values(), ...takenOver.values()].map(({ client }) => end(client)));
      await registry?.close();
    },
  };
}
