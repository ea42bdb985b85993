import { Counter, Gauge, Histogram, Registry } from "prom-client";

const seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric Sluice exposes on /metrics, one registry per process (per runtime in tests). */
export function createMetrics() {
  const registry = new Registry();
  const registers = [registry];
  const started = Date.now() / 1000;
  // The spool (SPOOL_DIR) points `depth` at its own account; the gauges read it at each scrape.
  const spool = {
    depth: { records: 0, bytes: 0, oldestAt: undefined as number | undefined },
    maxBytes: 0,
  };
  const metrics = {
    spool,
    registry,
    /** The text /metrics answers: this registry's, or with WORKERS the sum of every worker's. */
    exposition: (): Promise<string> => registry.metrics(),
    recordsAccepted: new Counter({
      name: "sluice_records_accepted_total",
      help: "Records written to their kind's Kafka topic.",
      labelNames: ["kind", "transport"] as const,
      registers,
    }),
    recordsRejected: new Counter({
      name: "sluice_records_rejected_total",
      help: "Records refused as invalid (each also dead-lettered).",
      labelNames: ["kind", "transport"] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: "sluice_dead_letters_total",
      help: "Dead letters written, by reason.",
      labelNames: ["kind", "transport", "reason"] as const,
      registers,
    }),
    kafkaProduceSeconds: new Histogram({
      name: "sluice_kafka_produce_duration_seconds",
      help: "Time from sending a batch to Kafka's acknowledgement (acks=all).",
      buckets: seconds,
      registers,
    }),
    kafkaBatchRecords: new Histogram({
      name: "sluice_kafka_batch_records",
      help: "Records per produce request (group commit).",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
      registers,
    }),
    kafkaSendFailures: new Counter({
      name: "sluice_kafka_send_failures_total",
      help: "Produce requests that failed or timed out.",
      registers,
    }),
    httpRequests: new Counter({
      name: "sluice_http_requests_total",
      help: "HTTP requests answered.",
      labelNames: ["method", "route", "status"] as const,
      registers,
    }),
    httpRequestSeconds: new Histogram({
      name: "sluice_http_request_duration_seconds",
      help: "HTTP request duration.",
      labelNames: ["method", "route"] as const,
      buckets: seconds,
      registers,
    }),
    httpInFlight: new Gauge({
      name: "sluice_http_requests_in_flight",
      help: "HTTP requests in progress.",
      registers,
    }),
    mqttConnections: new Gauge({
      name: "sluice_mqtt_connections",
      help: "MQTT subscriber connections of the pool, by state.",
      labelNames: ["state"] as const,
      registers,
    }),
    mqttSessionsTakenOver: new Counter({
      name: "sluice_mqtt_sessions_taken_over_total",
      help: "MQTT sessions of gateways that were gone, taken over to deliver what was queued for them.",
      registers,
    }),
    mqttRedelivered: new Counter({
      name: "sluice_mqtt_redelivered_messages_total",
      help: "MQTT messages the broker delivered again (DUP flag), e.g. after a restart.",
      registers,
    }),
    sinkLag: new Gauge({
      name: "sluice_sink_lag_records",
      help: "Records in a partition not yet stored by the sink, as of its last batch.",
      labelNames: ["topic", "partition"] as const,
      registers,
    }),
    sinkRows: new Counter({
      name: "sluice_sink_rows_written_total",
      help: "Rows inserted by the sink (duplicates not counted).",
      labelNames: ["kind"] as const,
      registers,
    }),
    sinkTransactionSeconds: new Histogram({
      name: "sluice_sink_transaction_duration_seconds",
      help: "Time to store one batch (insert and roll-ups, one transaction).",
      buckets: seconds,
      registers,
    }),
    cacheRequests: new Counter({
      name: "sluice_cache_requests_total",
      help: "Aggregate cache look-ups, by result.",
      labelNames: ["result"] as const,
      registers,
    }),
    connectorPolls: new Counter({
      name: "sluice_connector_polls_total",
      help: "Connector polls, by outcome: ok, not-modified, failed, quota (spent until the next slot), skipped.",
      labelNames: ["connector", "outcome"] as const,
      registers,
    }),
    connectorRecords: new Counter({
      name: "sluice_connector_records_total",
      help: "Records connectors polled and Kafka acknowledged.",
      labelNames: ["connector"] as const,
      registers,
    }),
    connectorLastSuccess: new Gauge({
      name: "sluice_connector_last_success_timestamp_seconds",
      help: "When a connector last completed a poll, Unix time.",
      labelNames: ["connector"] as const,
      registers,
    }),
    archiveFiles: new Counter({
      name: "sluice_archive_files_total",
      help: "Parquet files the archive completed, by folder (kind or deadletter).",
      labelNames: ["folder"] as const,
      registers,
    }),
    archiveBytes: new Counter({
      name: "sluice_archive_bytes_total",
      help: "Bytes of the Parquet files the archive completed.",
      labelNames: ["folder"] as const,
      registers,
    }),
    archiveRows: new Counter({
      name: "sluice_archive_rows_total",
      help: "Records written to archive files.",
      labelNames: ["folder"] as const,
      registers,
    }),
    archiveLag: new Gauge({
      name: "sluice_archive_lag_records",
      help: "Records in a partition not yet in a completed archive file, as of its last batch.",
      labelNames: ["topic", "partition"] as const,
      registers,
    }),
    archiveUploadFailures: new Counter({
      name: "sluice_archive_upload_failures_total",
      help: "Archive file writes that failed and are retried (storage down or refusing).",
      labelNames: ["folder"] as const,
      registers,
    }),
    spoolSpooled: new Counter({
      name: "sluice_spool_spooled_records_total",
      help: "Records committed to the local spool because Kafka did not acknowledge them (or their key had spooled ones).",
      registers,
    }),
    spoolForwarded: new Counter({
      name: "sluice_spool_forwarded_records_total",
      help: "Spooled records Kafka acknowledged and the spool deleted.",
      registers,
    }),
    spoolRefused: new Counter({
      name: "sluice_spool_refused_records_total",
      help: "Records neither Kafka nor the spool could take (answered 503 or PUBACK withheld), by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    spoolForwardFailures: new Counter({
      name: "sluice_spool_forward_failures_total",
      help: "Batches the forwarder sent that Kafka did not acknowledge (they stay spooled and are sent again).",
      registers,
    }),
    spoolCorruptEntries: new Counter({
      name: "sluice_spool_corrupt_entries_total",
      help: "Spool entries that failed their checks and went to the dead-letter topic instead.",
      registers,
    }),
    rateLimitRefusals: new Counter({
      name: "sluice_rate_limit_refusals_total",
      help: "Requests refused with 429.",
      registers,
    }),
    rateLimitFailOpen: new Counter({
      name: "sluice_rate_limit_fail_open_total",
      help: "Requests let through unchecked because Redis was unreachable.",
      registers,
    }),
  };
  new Gauge({
    name: "sluice_spool_records",
    help: "Records in the local spool, waiting for Kafka.",
    registers,
    collect() {
      this.set(spool.depth.records);
    },
  });
  new Gauge({
    name: "sluice_spool_bytes",
    help: "Bytes of the records in the local spool (counted against SPOOL_MAX_BYTES).",
    registers,
    collect() {
      this.set(spool.depth.bytes);
    },
  });
  new Gauge({
    name: "sluice_spool_max_bytes",
    help: "SPOOL_MAX_BYTES; 0 when the spool is off.",
    registers,
    collect() {
      this.set(spool.maxBytes);
    },
  });
  new Gauge({
    name: "sluice_spool_oldest_age_seconds",
    help: "Age of the oldest record in the spool; 0 when it is empty.",
    registers,
    collect() {
      const { oldestAt } = spool.depth;
      this.set(oldestAt === undefined ? 0 : (Date.now() - oldestAt) / 1000);
    },
  });
  new Gauge({
    name: "sluice_process_resident_memory_bytes",
    help: "Resident memory of the process.",
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: "sluice_process_heap_used_bytes",
    help: "JavaScript heap in use.",
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Counter({
    name: "sluice_process_cpu_seconds_total",
    help: "CPU time of the process, user and system.",
    registers,
    collect() {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  new Gauge({
    name: "sluice_process_start_time_seconds",
    help: "Start of the process, Unix time.",
    registers,
    collect() {
      this.set(started);
    },
  });
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
