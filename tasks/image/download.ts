// image.download: stream the image to a .part file (resuming an earlier .part with a Range request),
// verify the digest, and only then rename it into place. The host's HTTP layer (undici's RetryAgent)
// retries the request with backoff until a response arrives; a cut in the body is resumed here, from
// the .part. The verified image is a cache: rollback removes the .part, never the image.
// Labs sharing the image store download one file one at a time (src/image/store-lock.ts): the others
// wait and reuse what the first got. The digest is taken from the file, read back through one fd,
// never from the streamed bytes: what is stamped verified is what is on disk.
import { z } from "zod";
import { ExitError, errorMessage } from "../../src/errors.js";
import {
  DOWNLOAD_RETRY,
  DownloadError,
  isRetryableError,
  resumeDecision,
  statusLine,
} from "../../src/image/http.js";
import {
  expectedDigest,
  hashProgress,
  imageVerified,
  renameHashed,
  sha256Open,
  validStamp,
  writeStamp,
} from "../../src/image/image-host.js";
import { formatBytes, TransferProgress } from "../../src/image/progress.js";
import { ifImageUnlocked, withImageLock } from "../../src/image/store-lock.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";
import { type DownloadParams, downloadParamsSchema } from "./precheck.js";

/** What image.download returns (journaled). */
const downloadResultSchema = z.object({ path: z.string(), sha256: z.string() });
export type DownloadResult = z.infer<typeof downloadResultSchema>;

async function drain(body: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const _ of body) {
    // discard
  }
}

// One request: resumes at `have` bytes, or restarts when the server cannot. The host tries it again
// (DOWNLOAD_RETRY, each retry told) until a response arrives: what fails before is final here, a
// non-retryable DownloadError. A cut in the body after that throws what run() resumes after.
async function transferOnce(
  ctx: TaskContext,
  p: DownloadParams,
  part: string,
  have: number,
  progress: TransferProgress,
): Promise<void> {
  let retried = 0;
  const gaveUp = (what: string) => `Download of ${p.url} failed ${retried + 1} times in a row: ${what}`;
  const res = await ctx.host.http
    .request(p.url, {
      headers: have > 0 ? { range: `bytes=${have}-` } : {},
      signal: ctx.signal,
      timeoutMs: 30_000,
      retry: {
        ...DOWNLOAD_RETRY,
        onRetry({ error, status, delayMs }) {
          retried++;
          const why =
            status === undefined ? `Network error (${errorMessage(error)})` : `HTTP ${statusLine(status)}`;
          ctx.info(`${why}; retrying in ${Math.round(delayMs / 100) / 10} s at ${formatBytes(have)}`);
        },
      },
    })
    .catch((e: unknown) => {
      if (ctx.signal.aborted) throw e;
      throw new DownloadError(retried > 0 ? gaveUp(errorMessage(e)) : errorMessage(e), false, { cause: e });
    });
  if (res.status >= 400 && res.status !== 416) {
    await drain(res.body).catch(() => undefined);
    const status = `HTTP ${statusLine(res.status)}`;
    throw new DownloadError(retried > 0 ? gaveUp(status) : `${status} for ${p.url}`, false);
  }
  const d = resumeDecision(res.status, res.headers, have);
  if (d.action === "fail") {
    await drain(res.body).catch(() => undefined);
    throw new DownloadError(`unexpected HTTP ${statusLine(res.status)} for ${p.url}`, false);
  }
  if (d.action === "complete") {
    await drain(res.body).catch(() => undefined);
    return;
  }
  let start = have;
  if (d.action === "restart") {
    ctx.info(`${d.reason}: downloading from the start`);
    start = 0;
  } else if (have > 0) ctx.info(`Resuming the download at ${formatBytes(have)}`);
  const tooLarge = (bytes: number) =>
    new DownloadError(
      `${p.url} is more than image.maxSize (${formatBytes(p.maxSize ?? 0)}) at ${formatBytes(bytes)}: the download was deleted; raise image.maxSize if this image is meant`,
      false,
    );
  if (p.maxSize !== undefined && d.total !== undefined && d.total > p.maxSize) {
    await drain(res.body).catch(() => undefined);
    await ctx.host.fs.rm(part);
    throw tooLarge(d.total);
  }
  progress.setTotal(d.total);
  progress.restart(start);
  const file = await ctx.host.fs.openWrite(part, start > 0);
  let n = start;
  try {
    for await (const chunk of res.body) {
      await file.write(chunk);
      n += chunk.length;
      progress.update(n);
      // A server that does not say the size (chunked) or lies about it is cut off at the cap.
      if (p.maxSize !== undefined && n > p.maxSize) break;
    }
  } finally {
    await file.close();
  }
  if (p.maxSize !== undefined && n > p.maxSize) {
    await ctx.host.fs.rm(part);
    throw tooLarge(n);
  }
  if (d.total !== undefined && n !== d.total)
    throw new DownloadError(`the connection closed after ${n} of ${d.total} bytes`, true);
}

/**
 * Fetch the whole image into the .part. Cuts in the body: each is resumed from the .part at once (that
 * request has its own retries, with backoff, should the network still be down). Not left to undici's
 * RetryHandler, which can resume a body itself: its count of tries never resets on progress (a long
 * download on a flaky line would fail after 5 cuts however far each got), and a server that cannot
 * resume ends its try with an error where here it starts over.
 */
export async function transfer(ctx: TaskContext, p: DownloadParams): Promise<void> {
  const part = `${p.path}.part`;
  const progress = new TransferProgress({ tty: ctx.tty, emit: (l) => ctx.progress(l) });
  let stalls = 0;
  for (;;) {
    ctx.signal.throwIfAborted();
    const have = (await ctx.host.fs.stat(part))?.size ?? 0;
    try {
      await transferOnce(ctx, p, part, have, progress);
      return;
    } catch (e) {
      if (ctx.signal.aborted || !isRetryableError(e)) throw e;
      const now = (await ctx.host.fs.stat(part))?.size ?? 0;
      stalls = now > have ? 0 : stalls + 1;
      if (stalls > DOWNLOAD_RETRY.retries)
        throw new ExitError(
          `Download of ${p.url} broke off ${stalls} times in a row without progress: ${errorMessage(e)}`,
        );
      ctx.info(`Connection lost at ${formatBytes(now)} (${errorMessage(e)}); resuming`);
    }
  }
}

/**
 * Verify the .part and rename it into place: hashed by reading it back through one fd, which stays
 * open across the rename, so the stamp names exactly the bytes that were hashed. A mismatch deletes
 * the .part (the one hashed) and says so.
 */
export async function place(
  ctx: TaskContext,
  p: DownloadParams,
  expected: { sha256: string; from: string } | undefined,
): Promise<DownloadResult> {
  const part = `${p.path}.part`;
  const f = await ctx.host.fs.openRead(part);
  if (!f) throw new ExitError(`${part} vanished before it was verified`);
  try {
    let hashed = await sha256Open(
      ctx,
      f,
      part,
      hashProgress((l) => ctx.progress(l)),
    );
    if (expected && hashed.sha256 !== expected.sha256) {
      const st = await ctx.host.fs.stat(part);
      if (st?.inoId === hashed.identity.ino && st.devId === hashed.identity.dev) await ctx.host.fs.rm(part);
      throw new ExitError(
        `Checksum mismatch for ${p.name}: expected ${expected.sha256} (${expected.from}), got ${hashed.sha256}; the download was deleted`,
      );
    }
    if (expected) ctx.info(`SHA-256 verified: ${hashed.sha256}`);
    else ctx.info(`Not verified (set image.sha256 or image.checksums): SHA-256 is ${hashed.sha256}`);
    hashed = await renameHashed(ctx, f, hashed, part, p.path);
    await writeStamp(ctx, p.stamp, p.path, hashed, p.checksums);
    return { path: p.path, sha256: hashed.sha256 };
  } finally {
    await f.close();
  }
}

/** Download, verify and place the image. */
export const imageDownload = defineTask({
  kind: "image.download",
  journaled: { params: downloadParamsSchema, result: downloadResultSchema },
  title: (p) => `Downloading image ${p.name} to ${p.store}`,
  check: (ctx, p) => imageVerified(ctx, p),
  async run(ctx, p) {
    const expected = await expectedDigest(ctx, p);
    return withImageLock(ctx, p.path, "downloading", async () => {
      // Got (and verified) by another lab while this one waited: reuse it.
      if (await imageVerified(ctx, p)) {
        const stamp = await validStamp(ctx, p.stamp, p.path);
        ctx.info(
          `${p.name} was downloaded meanwhile (by another lab): ${expected ? "verified, " : ""}reusing it`,
        );
        return { path: p.path, sha256: stamp?.sha256 ?? expected?.sha256 ?? "" };
      }
      await transfer(ctx, p);
      return place(ctx, p, expected);
    });
  },
  // The verified image stays (a cache); only the partial file goes, and only when no one else is
  // getting the image now: another lab's download in progress writes that .part.
  async rollback(ctx, { params }) {
    const done = await ifImageUnlocked(ctx, params.path, "removing a partial download", async () => {
      await ctx.host.fs.rm(`${params.path}.part`);
      return true;
    });
    if (!done) ctx.info(`Another lab is downloading ${params.name} now: its ${params.path}.part stays`);
  },
  rollbackTitle: (p) => `Removing the partial download of ${p.name}`,
});
