import type { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import type { Context } from "hono";
import scalarPath from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with {
  type: "file",
};
import pkg from "../../package.json";

let scalar: Promise<{ body: Uint8Array<ArrayBuffer>; version: string }> | undefined;

/** Scalar's standalone browser bundle (its styles included), read once from the package or the executable. */
function loadScalar() {
  scalar ??= Bun.file(scalarPath)
    .bytes()
    .then((body) => ({ body, version: Bun.hash(body).toString(36) }));
  return scalar;
}

/** The bundle, cached for a year under the URL that names its content, otherwise revalidated by ETag. */
async function serveScalar(c: Context) {
  const { body, version } = await loadScalar();
  // Weak: the same for the identity and a compressed representation.
  const etag = `W/"${version}"`;
  const headers = {
    "content-type": "text/javascript; charset=utf-8",
    "cache-control":
      c.req.query("v") === version ? "public, max-age=31536000, immutable" : "public, no-cache",
    etag,
  };
  const known = c.req
    .header("if-none-match")
    ?.split(",")
    .map((tag) => tag.trim().replace(/^W\//, ""));
  if (known?.includes(etag.slice(2)) || known?.includes("*")) return c.body(null, 304, headers);
  return c.body(body, 200, headers);
}

/** The OpenAPI document and its reference page, which loads nothing but the gateway's own URLs. */
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
  app.get(
    "/docs",
    Scalar(async () => ({
      url: "/openapi.json",
      pageTitle: "Sluice API",
      cdn: `/docs/scalar.js?v=${(await loadScalar()).version}`,
      withDefaultFonts: false,
      telemetry: false,
      showDeveloperTools: "never",
      agent: { disabled: true },
      mcp: { disabled: true },
    })),
  );
  app.get("/docs/scalar.js", serveScalar);
}
