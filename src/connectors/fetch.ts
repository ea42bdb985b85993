import { retryAfterMs } from "../retry-after";

/** The query parameters that carry API keys: their values never reach a log line, a metric or a record. */
const secretParams = new Set(["appid", "access_key", "apikey", "api_key", "token", "key"]);

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    for (const name of [...parsed.searchParams.keys()]) {
      if (secretParams.has(name.toLowerCase())) parsed.searchParams.set(name, "[redacted]");
    }
    return parsed.toString().replaceAll("%5Bredacted%5D", "[redacted]");
  } catch {
    return "[unparseable URL]";
  }
}

/** A request of a poll that did not give a page; `retryAfterMs` when the API said when to come back. */
export class PollFailure extends Error {
  constructor(
    message: string,
    readonly retriable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface ApiRequest {
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: unknown;
}

export type ApiAnswer = { notModified: true } | { notModified: false; body: unknown; headers: Headers };

/**
 * JSON over HTTP with a timeout, conditional requests (the ETag and Last-Modified an URL last gave are sent
 * back, and a 304 is an answer with nothing new) and failures sorted into retriable or not.
 */
export function createFetcher(timeoutMs: number) {
  const validators = new Map<string, { etag?: string; lastModified?: string }>();

  async function fetchJson(request: ApiRequest): Promise<ApiAnswer> {
    const known = validators.get(request.url);
    const headers: Record<string, string> = { accept: "application/json", ...request.headers };
    if (known?.etag) headers["if-none-match"] = known.etag;
    if (known?.lastModified) headers["if-modified-since"] = known.lastModified;
    if (request.body !== undefined) headers["content-type"] ??= "application/json";
    let response: Response;
    try {
      response = await fetch(request.url, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "follow",
      });
    } catch (error) {
      const name = (error as Error).name;
      const reason =
        name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : "the API could not be reached";
      throw new PollFailure(`${reason} (${redactUrl(request.url)})`, true);
    }
    if (response.status === 304) {
      await response.arrayBuffer();
      return { notModified: true };
    }
    const text = await response.text();
    if (!response.ok) {
      const retriable = response.status === 429 || response.status === 408 || response.status >= 500;
      const wait = retriable ? retryAfterMs(response.headers.get("retry-after")) : undefined;
      throw new PollFailure(
        `HTTP ${response.status} from ${redactUrl(request.url)}: ${text.slice(0, 200)}`,
        retriable,
        wait,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new PollFailure(`the answer of ${redactUrl(request.url)} is not JSON`, false);
    }
    const etag = response.headers.get("etag") ?? undefined;
    const lastModified = response.headers.get("last-modified") ?? undefined;
    if (etag || lastModified) validators.set(request.url, { etag, lastModified });
    return { notModified: false, body, headers: response.headers };
  }

  return {
    fetchJson,
    /** Drops what an URL last gave, so that its next request is not conditional. */
    forget: (url: string) => validators.delete(url),
  };
}
