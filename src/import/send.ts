import { retryAfterMs } from "../retry-after";
import { type Batch, sliceBatch } from "./batch";

export interface FieldError {
  path: string;
  message: string;
}

/** Why the import cannot go on: the gateway refused the requests themselves, or cannot be reached. */
export class ImportStopped extends Error {}

export interface SenderOptions {
  url: string;
  apiKey?: string;
  contentType: string;
  concurrency: number;
  /** The gateway's final answer to a batch (or to part of one, after halving): how many it took. */
  onAnswered: (batch: Batch, accepted: number) => void;
  /** One record of a batch the gateway refused, by its index in the batch. */
  onRefused: (batch: Batch, index: number, errors: FieldError[]) => void;
  /** Something the user should know while it goes on: retries, mostly. */
  notice: (message: string) => void;
  /** How long the gateway may stay unreachable (or answer 5xx other than 503) before the import stops. */
  giveUpMs?: number;
  requestTimeoutMs?: number;
}

interface Problem {
  type?: string;
  title?: string;
  detail?: string;
  errors?: (FieldError & { index?: number })[];
}

interface Accepted {
  accepted: number;
  rejected: { index: number; errors: FieldError[] }[];
}

const describe = (status: number, problem: Problem | undefined) =>
  `${status}${problem?.title ? ` ${problem.title}` : ""}${problem?.detail ? `: ${problem.detail}` : ""}`;

/**
 * Posts batches with up to `concurrency` requests in flight. 503 and 429 are retried after Retry-After
 * for as long as the gateway keeps saying so; network errors and other 5xx with backoff up to `giveUpMs`,
 * then the import stops, loudly. 422 means every record of the batch was refused; 400 and 413 (a record
 * the gateway cannot read, a batch larger than its limits) are narrowed down by halving the batch until
 * the record at fault is alone and refused with the gateway's detail; any other answer stops the import.
 */
export function createSender(options: SenderOptions) {
  const running = new Set<Promise<void>>();
  let stopped: ImportStopped | undefined;
  const giveUpMs = options.giveUpMs ?? 120_000;
  const headers: Record<string, string> = {
    "content-type": options.contentType,
    ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
  };
  let lastNotice = 0;
  let quietNotices = 0;
  const notice = (message: string) => {
    // One retry notice every few seconds is enough, however many requests are waiting.
    const now = Date.now();
    if (now - lastNotice < 5000) {
      quietNotices++;
      return;
    }
    const more = quietNotices > 0 ? ` (and ${quietNotices} more retries)` : "";
    lastNotice = now;
    quietNotices = 0;
    options.notice(message + more);
  };

  async function send(batch: Batch): Promise<void> {
    let failingSince: number | undefined;
    for (let attempt = 0; ; attempt++) {
      if (stopped) return;
      let response: Response;
      let problem: Problem | undefined;
      const trouble = async (what: string) => {
        failingSince ??= Date.now();
        if (Date.now() - failingSince > giveUpMs)
          throw new ImportStopped(`giving up after ${Math.round(giveUpMs / 1000)} s of failures: ${what}`);
        const wait = Math.min(15_000, 500 * 2 ** Math.min(attempt, 5)) * (0.75 + Math.random() / 2);
        notice(`${what}; retrying in ${(wait / 1000).toFixed(1)} s`);
        await Bun.sleep(wait);
      };
      try {
        response = await fetch(options.url, {
          method: "POST",
          headers,
          body: batch.body,
          signal: AbortSignal.timeout(options.requestTimeoutMs ?? 60_000),
        });
      } catch (error) {
        await trouble(`cannot reach the gateway at ${options.url} (${(error as Error).message})`);
        continue;
      }
      const { status } = response;
      if (status === 202 || status === 200) {
        const answer = (await response.json()) as Accepted;
        options.onAnswered(batch, answer.accepted);
        for (const { index, errors } of answer.rejected ?? []) options.onRefused(batch, index, errors);
        return;
      }
      try {
        problem = (await response.json()) as Problem;
      } catch {
        problem = undefined;
      }
      if (status === 503 || status === 429) {
        const wait = retryAfterMs(response.headers.get("retry-after")) ?? 1000;
        notice(`the gateway answered ${describe(status, problem)}; retrying in ${Math.ceil(wait / 1000)} s`);
        await Bun.sleep(Math.min(wait, 300_000));
        continue;
      }
      if (status >= 500) {
        await trouble(`the gateway answered ${describe(status, problem)}`);
        continue;
      }
      if (status === 422) {
        const byIndex = new Map<number, FieldError[]>();
        for (const { index, path, message } of problem?.errors ?? []) {
          const errors = byIndex.get(index ?? 0) ?? [];
          errors.push({ path, message });
          byIndex.set(index ?? 0, errors);
        }
        options.onAnswered(batch, 0);
        batch.lines.forEach((_, index) => {
          const errors = byIndex.get(index) ?? [{ path: "", message: problem?.detail ?? "refused" }];
          options.onRefused(batch, index, errors);
        });
        return;
      }
      if (status === 400 || status === 413) {
        const count = batch.lines.length;
        if (count === 1) {
          options.onAnswered(batch, 0);
          options.onRefused(batch, 0, [{ path: "", message: describe(status, problem) }]);
          return;
        }
        const half = Math.ceil(count / 2);
        await send(sliceBatch(batch, 0, half));
        await send(sliceBatch(batch, half, count));
        return;
      }
      throw new ImportStopped(`the gateway answered ${describe(status, problem)}`);
    }
  }

  return {
    get stopped() {
      return stopped;
    },
    /** Sends the batch once fewer than `concurrency` requests are in flight. */
    async submit(batch: Batch) {
      while (running.size >= options.concurrency) await Promise.race(running);
      if (stopped) return;
      const task: Promise<void> = send(batch)
        .catch((error) => {
          stopped ??= error instanceof ImportStopped ? error : new ImportStopped((error as Error).message);
        })
        .finally(() => {
          running.delete(task);
          batch.release?.();
        });
      running.add(task);
    },
    async drain() {
      while (running.size > 0) await Promise.all(running);
    },
  };
}
