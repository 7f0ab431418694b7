// image.precheck: before a download, ask the server for the size, make sure the checksums name the
// image, and check that it fits in the image store with a margin. Only reads.
import { z } from "zod";
import { ExitError } from "../../src/errors.js";
import type { HostContext } from "../../src/host/host.js";
import { SPACE_MARGIN, spaceNeeded, statusLine } from "../../src/image/http.js";
import { expectedDigest, freeBytesFor, imageVerified } from "../../src/image/image-host.js";
import { formatBytes } from "../../src/image/progress.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters of image.precheck and image.download (the same: both come from image.*). */
export const downloadParamsSchema = z.object({
  url: z.string(),
  /** Where the verified image ends up. */
  path: z.string(),
  /** The image store (free space is checked there). */
  store: z.string(),
  /** The stamp file recording the verified digest. */
  stamp: z.string(),
  /** The image's name in a SHA256SUMS file. */
  name: z.string(),
  sha256: z.string().optional(),
  checksums: z.string().optional(),
  /** image.checksumsKeyring: the checksums' signature (<checksums>.gpg) is checked with it (absent in old journals). */
  checksumsKeyring: z.string().optional(),
  /** image.maxSize: a larger image is refused, before and while downloading (absent in old journals). */
  maxSize: z.number().optional(),
});
export type DownloadParams = z.infer<typeof downloadParamsSchema>;

/** What a HEAD request said about the image. */
async function headImage(ctx: HostContext, url: string): Promise<{ size: number | undefined }> {
  const res = await ctx.host.http.request(url, { method: "HEAD", signal: ctx.signal, timeoutMs: 30_000 });
  for await (const _ of res.body) {
    // drain, so the connection is reused
  }
  // Servers that do not do HEAD: the size stays unknown and GET will tell.
  if (res.status === 405 || res.status === 501) return { size: undefined };
  if (res.status < 200 || res.status >= 300) throw new ExitError(`HTTP ${statusLine(res.status)} for ${url}`);
  const len = res.headers["content-length"];
  const size = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
  return { size };
}

/** Check size, checksums and free space before a download. */
export const imagePrecheck = defineTask<DownloadParams>({
  kind: "image.precheck",
  title: () => "Executing prechecks for image download",
  check: (ctx, p) => imageVerified(ctx, p),
  async run(ctx, p) {
    ctx.info(`URL: ${p.url}`);
    const expected = await expectedDigest(ctx, p);
    if (expected) ctx.info(`Expected SHA-256 (${expected.from}): ${expected.sha256}`);
    const { size } = await headImage(ctx, p.url);
    const have = (await ctx.host.fs.stat(`${p.path}.part`))?.size ?? 0;
    const free = await freeBytesFor(ctx, p.store);
    if (size === undefined) {
      ctx.info(`The server does not say the image's size; ${formatBytes(free)} free in ${p.store}`);
      return;
    }
    if (p.maxSize !== undefined && size > p.maxSize)
      throw new ExitError(
        `${p.url} is ${formatBytes(size)}, more than image.maxSize (${formatBytes(p.maxSize)}): raise it if this image is meant`,
      );
    const need = spaceNeeded(size, have);
    if (free < need)
      throw new ExitError(
        `Not enough free space in ${p.store} for ${p.name}: it needs ${formatBytes(need)} ` +
          `(${formatBytes(Math.max(0, size - have))} to download + ${formatBytes(SPACE_MARGIN)} margin), ` +
          `and ${formatBytes(free)} is free`,
      );
    ctx.info(
      `Downloading image ${p.name} (size ${formatBytes(size)}${have ? `, ${formatBytes(have)} already there` : ""}) to ${p.store} (free space ${formatBytes(free)})`,
    );
  },
});
