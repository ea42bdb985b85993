import { Refused } from "./decode";

type Coding = "gzip" | "deflate";

/** The content codings a request body may come in (RFC 9110 §8.4.1), by their registered names. */
const decoders: Record<string, Coding | null> = {
  identity: null,
  gzip: "gzip",
  "x-gzip": "gzip",
  deflate: "deflate",
};

export const acceptedEncodings = "gzip, deflate";

/** The codings of a Content-Encoding header, in the order they must be undone; a 415 for any other. */
function codingsOf(header: string | null): Coding[] {
  if (!header) return [];
  const names = header
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const unknown = names.filter((name) => !(name in decoders));
  if (unknown.length > 0) {
    throw new Refused(
      415,
      "unsupported-encoding",
      `content encoding '${unknown.join(", ")}' is not one of ${acceptedEncodings}`,
      "",
      { "accept-encoding": acceptedEncodings },
    );
  }
  return names
    .map((name) => decoders[name])
    .filter((format): format is Coding => Boolean(format))
    .reverse();
}

/**
 * Reads the body, decoding gzip or deflate on the way; stops as soon as it is known to exceed `limit` bytes,
 * declared, sent or decoded, so a small bomb of zeros costs no more memory than the limit.
 */
export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = (size: number | string, what = "body") =>
    new Refused(413, "body-too-large", `${what} of ${size} bytes exceeds the limit of ${limit} bytes`);
  const codings = codingsOf(request.headers.get("content-encoding"));
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) throw tooLarge(declared);
  if (!request.body) return new Uint8Array();
  if (codings.length === 0 && Number.isFinite(declared)) return new Uint8Array(await request.arrayBuffer());

  let stream: ReadableStream = request.body;
  for (const format of codings) stream = stream.pipeThrough(new DecompressionStream(format));
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(`more than ${limit}`, codings.length > 0 ? "decoded body" : "body");
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof Refused) throw error;
    const coding = request.headers.get("content-encoding");
    throw new Refused(
      400,
      "malformed-body",
      `body is not valid ${coding}: ${error instanceof Error ? error.message : error}`,
    );
  }
  return Buffer.concat(chunks);
}
