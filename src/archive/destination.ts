import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { S3Client } from "bun";
import type { Config } from "../config";

/** Where archive files go: a folder or an S3 bucket. An object is visible whole or not at all. */
export interface Destination {
  /** For logs and errors: the URL without credentials. */
  readonly url: string;
  put(key: string, bytes: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array>;
  /** Every key under the prefix, in lexical order. */
  list(prefix: string): Promise<string[]>;
}

/** A folder: a file is written beside its name, synced to disk, renamed into place, and the rename synced. */
function folderDestination(root: string, url: string): Destination {
  return {
    url,
    async put(key, bytes) {
      const path = join(root, key);
      await mkdir(dirname(path), { recursive: true });
      const partial = `${path}.${crypto.randomUUID()}.partial`;
      try {
        const file = await open(partial, "w");
        try {
          await file.writeFile(bytes);
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(partial, path);
        // The rename is durable once the folder's entry is: without this a power cut could lose a file whose
        // offsets were committed.
        const folder = await open(dirname(path), "r");
        try {
          await folder.sync();
        } finally {
          await folder.close();
        }
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
    },
    get: async (key) => new Uint8Array(await readFile(join(root, key))),
    async list(prefix) {
      const base = join(root, prefix.slice(0, prefix.lastIndexOf("/") + 1));
      const entries = await readdir(base, { recursive: true, withFileTypes: true }).catch(
        (error: NodeJS.ErrnoException) => {
          if (error.code === "ENOENT") return [];
          throw error;
        },
      );
      return entries
        .filter((entry) => entry.isFile() && !entry.name.endsWith(".partial"))
        .map((entry) => relative(root, join(entry.parentPath, entry.name)))
        .filter((key) => key.startsWith(prefix))
        .sort();
    },
  };
}

/** An S3 bucket (AWS, MinIO, any S3-compatible server); a PUT or a completed multipart upload is atomic. */
function bucketDestination(bucket: string, prefix: string, config: Config, url: string): Destination {
  const client = new S3Client({
    bucket,
    endpoint: config.S3_ENDPOINT,
    region: config.S3_REGION,
    accessKeyId: config.AWS_ACCESS_KEY_ID,
    secretAccessKey: config.AWS_SECRET_ACCESS_KEY,
    sessionToken: config.AWS_SESSION_TOKEN,
  });
  const keyOf = (key: string) => `${prefix}${key}`;
  return {
    url,
    async put(key, bytes) {
      await client.write(keyOf(key), bytes, { type: "application/vnd.apache.parquet" });
    },
    get: async (key) => new Uint8Array(await client.file(keyOf(key)).arrayBuffer()),
    async list(listPrefix) {
      const keys: string[] = [];
      let continuationToken: string | undefined;
      do {
        const page = await client.list({ prefix: keyOf(listPrefix), continuationToken });
        for (const object of page.contents ?? []) keys.push(object.key.slice(prefix.length));
        continuationToken = page.isTruncated ? page.nextContinuationToken : undefined;
      } while (continuationToken);
      return keys.sort();
    },
  };
}

/** The destination of ARCHIVE_URL: `file:///var/lib/sluice/archive` or `s3://bucket/prefix`. */
export function createDestination(config: Config, url = config.ARCHIVE_URL): Destination {
  if (!url) throw new Error("ARCHIVE_URL is not set");
  const parsed = new URL(url);
  if (parsed.protocol === "file:") return folderDestination(decodeURIComponent(parsed.pathname), url);
  const path = parsed.pathname.replace(/^\/+|\/+$/g, "");
  return bucketDestination(parsed.hostname, path ? `${path}/` : "", config, url);
}
