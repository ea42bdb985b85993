import type { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import pkg from "../../package.json";

export function registerDocs(app: OpenAPIHono) {
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    // Relative: the document is right wherever the gateway is reached.
    servers: [{ url: "/", description: "This gateway" }],
    info: {
      title: "Sluice",
      version: pkg.version,
      description:
        "Edge ingestion gateway: devices post sensor readings, foot-traffic counts, weather observations and " +
        "flight statuses; Sluice validates them and acknowledges once they are in Kafka.",
    },
  });
  app.get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Sluice API" }));
}
