import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser, Locator } from "playwright-core";
import type { Runtime } from "../src/runtime";
import { launchChromium } from "./browser";
import { freePort, startRuntime } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let browser: Browser;

beforeAll(async () => {
  runtime = await startRuntime();
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop(true);
  await runtime?.close();
}, 30_000);

interface Operation {
  summary?: string;
  tags?: string[];
}
interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

const appears = (locator: Locator, timeout: number) =>
  locator
    .first()
    .waitFor({ state: "visible", timeout })
    .then(
      () => true,
      () => false,
    );

test("/docs renders the API reference with the network cut off, from the gateway's own files only", async () => {
  const document = (await (await fetch(new URL("/openapi.json", server.url))).json()) as OpenApiDocument;
  const operations = [
    document.paths["/v1/sensors/readings"]?.post,
    document.paths["/v1/kinds"]?.get,
    document.paths["/readyz"]?.get,
  ];
  const summaries = operations.map((operation) => operation?.summary ?? "");
  expect(summaries.every((summary) => summary.length > 0)).toBe(true);

  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const elsewhere: string[] = [];
  const failed: string[] = [];
  const errors: string[] = [];
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.host === server.url.host) return route.continue();
    elsewhere.push(url.href);
    return route.abort("internetdisconnected");
  });
  page.on("requestfailed", (request) => failed.push(`${request.url()} ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
  });
  page.on("pageerror", (error) => errors.push(error.message));

  await page.goto(new URL("/docs", server.url).href);
  // The reference lists each tag's operations in the sidebar once the tag's group is opened.
  const group = (verb: string, operation: Operation | undefined) =>
    page.getByRole("button", { name: `${verb} Group - ${operation?.tags?.[0]}`, exact: true });
  const rendered = await appears(group("Open", operations[0]).or(group("Close", operations[0])), 20_000);
  const shown: string[] = [];
  for (const operation of operations) {
    const summary = operation?.summary ?? "";
    if (rendered && (await group("Open", operation).isVisible())) await group("Open", operation).click();
    const visible = rendered && (await appears(page.getByText(summary, { exact: true }), 5_000));
    shown.push(visible ? summary : `not shown: ${summary}`);
  }
  await page.waitForLoadState("networkidle");
  expect({ elsewhere, failed, errors }).toEqual({ elsewhere: [], failed: [], errors: [] });
  expect(shown).toEqual(summaries);
  await page.close();
}, 60_000);

test("the reference's script is served without a key, cached by version, revalidated by ETag, and undocumented", async () => {
  const page = await (await fetch(new URL("/docs", server.url))).text();
  expect(page).not.toMatch(/\/\/|\bimport\b/);
  const sources = [...page.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? "");
  expect(sources).toHaveLength(1);
  const script = new URL(sources[0] ?? "", server.url);
  expect(script.origin).toBe(server.url.origin);
  expect(script.pathname).toBe("/docs/scalar.js");

  const first = await fetch(script);
  expect(first.status).toBe(200);
  expect(first.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  expect(first.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
  expect(await first.text()).toContain("createApiReference");
  const etag = first.headers.get("etag") ?? "";
  expect(etag).toMatch(/^W\/"[0-9a-z]+"$/);
  const again = await fetch(script, { headers: { "if-none-match": etag } });
  expect(again.status).toBe(304);
  expect(await again.text()).toBe("");
  // Without the version it may change under the same URL, so it is revalidated every time.
  const unversioned = await fetch(new URL("/docs/scalar.js", server.url));
  expect(unversioned.headers.get("cache-control")).toBe("public, no-cache");
  expect(unversioned.headers.get("etag")).toBe(etag);
  await unversioned.arrayBuffer();

  const post = await fetch(script, { method: "POST" });
  expect(post.status).toBe(405);
  expect(post.headers.get("allow")).toBe("GET, HEAD");
  const document = (await (await fetch(new URL("/openapi.json", server.url))).json()) as OpenApiDocument;
  expect(Object.keys(document.paths).filter((path) => path.startsWith("/docs"))).toEqual([]);
});
