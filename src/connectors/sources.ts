import { findKind, type Kind } from "../kinds";
import { valueAt } from "../kinds/fields";
import type { ConnectorConfig } from "./config";
import type { ApiRequest } from "./fetch";

/** One page of a poll as the API answered it. */
export interface Page {
  request: ApiRequest;
  body: unknown;
  headers: Headers;
  /** 0 for the first request of the poll. */
  index: number;
}

/** What a connector type knows: the kind it feeds, its poll's requests one after the other, and the records of a page. */
export interface Source {
  kind: Kind;
  /** The first request of a poll, or the one after `previous`; undefined when the poll is complete. */
  next(previous?: Page): ApiRequest | undefined;
  records(page: Page): unknown[];
}

const withQuery = (base: string, query: Record<string, string | number | boolean>) => {
  const url = new URL(base);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
  return url.toString();
};

function kindNamed(name: string): Kind {
  const kind = findKind(name);
  if (!kind) throw new Error(`kind ${name} is not in the registry`);
  return kind;
}

/** OpenWeather's current weather, one request per location. */
function openWeather(config: Extract<ConnectorConfig, { type: "openweather" }>): Source {
  const endpoint = `${config.baseUrl ?? "https://api.openweathermap.org"}/data/2.5/weather`;
  return {
    kind: kindNamed("weather"),
    next(previous) {
      const location = config.locations[previous ? previous.index + 1 : 0];
      if (!location) return undefined;
      const url = withQuery(endpoint, { ...location, units: config.units, appid: config.apiKey });
      return { url, method: "GET", headers: {} };
    },
    records: (page) => [page.body],
  };
}

/** AviationStack's flights, paged by offset until `pagination.total` or `maxPages`. */
function aviationStack(config: Extract<ConnectorConfig, { type: "aviationstack" }>): Source {
  const endpoint = `${config.baseUrl ?? "https://api.aviationstack.com"}/v1/flights`;
  const request = (offset: number): ApiRequest => ({
    url: withQuery(endpoint, { ...config.params, limit: config.limit, offset, access_key: config.apiKey }),
    method: "GET",
    headers: {},
  });
  return {
    kind: kindNamed("flights"),
    next(previous) {
      if (!previous) return request(0);
      const pagination = (previous.body as { pagination?: Record<string, unknown> }).pagination ?? {};
      const offset = Number(pagination.offset ?? 0) + Number(pagination.count ?? 0);
      const done = !(Number(pagination.count) > 0) || offset >= Number(pagination.total ?? 0);
      return done || previous.index + 1 >= config.maxPages ? undefined : request(offset);
    },
    records: (page) => {
      const data = (page.body as { data?: unknown }).data;
      return Array.isArray(data) ? data : [];
    },
  };
}

/** The link with rel="next" of an RFC 8288 Link header, resolved against the page's URL. */
export function nextLink(header: string | null, base: string): string | undefined {
  for (const part of header?.split(/,(?=\s*<)/) ?? []) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (match && /;\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?/i.test(match[2] ?? "")) {
      return new URL(match[1] ?? "", base).toString();
    }
  }
  return undefined;
}

/** Any JSON API: the records at a dotted path of the body, paged by offset, cursor or Link header. */
function httpApi(config: Extract<ConnectorConfig, { type: "http" }>): Source {
  const path = config.items === "" ? [] : config.items.split(".");
  const request = (url: string): ApiRequest => ({
    url,
    method: config.method,
    headers: config.headers,
    body: config.body,
  });
  const pagination = config.pagination;
  const first = () => {
    const offset =
      pagination?.type === "offset"
        ? { [pagination.offsetParam]: 0, [pagination.limitParam]: pagination.limit }
        : {};
    return request(withQuery(config.url, { ...config.query, ...offset }));
  };
  const source: Source = {
    kind: kindNamed(config.kind),
    next(previous) {
      if (!previous) return first();
      if (!pagination || previous.index + 1 >= config.maxPages) return undefined;
      if (pagination.type === "link") {
        const url = nextLink(previous.headers.get("link"), previous.request.url);
        return url ? request(url) : undefined;
      }
      if (pagination.type === "cursor") {
        const cursor = valueAt(previous.body, pagination.path.split("."));
        if (cursor === undefined || cursor === null || cursor === "") return undefined;
        return request(withQuery(previous.request.url, { [pagination.param]: String(cursor) }));
      }
      const count = source.records(previous).length;
      if (count < pagination.limit) return undefined;
      const offset =
        Number(new URL(previous.request.url).searchParams.get(pagination.offsetParam) ?? 0) + count;
      return request(withQuery(previous.request.url, { [pagination.offsetParam]: offset }));
    },
    records(page) {
      const items = path.length === 0 ? page.body : valueAt(page.body, path);
      if (!Array.isArray(items)) return [];
      // An item without an id of its own gets one from its content, so that overlapping polls store it once.
      return items.map((item) =>
        typeof item === "object" && item !== null && !Array.isArray(item) && !("id" in item)
          ? { ...item, id: `${config.name}-${Bun.hash(JSON.stringify(item)).toString(36)}` }
          : item,
      );
    },
  };
  return source;
}

export function sourceOf(config: ConnectorConfig): Source {
  if (config.type === "openweather") return openWeather(config);
  if (config.type === "aviationstack") return aviationStack(config);
  return httpApi(config);
}
