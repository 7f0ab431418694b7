// image.server: an image of an Incus image server (image.server + image.alias, as `incus image list
// images:` names them) as the lab's read-only lower layer. The simplestreams index
// (streams/v1/index.json) and the products file it names are read with bounded size, the product
// chosen by alias and the host's architecture, its newest version with a root squashfs
// (src/image/simplestreams.ts). That squashfs is downloaded as image.url downloads (tasks/image/
// download.ts: progress, resume after a cut, image.maxSize) and verified by the SHA-256 the index
// gives, unpacked by unsquashfs as root into a directory of its own, and made into the lab's layer
// as an OCI image's tree is (tasks/image/oci.ts squashTree: device nodes dropped, configured,
// flattened, stamped). Everything happens in a 0700 temporary directory beside the target, renamed
// into place when complete: a failed or refused download keeps nothing. The image is a cache: as a
// tag, it is fetched when missing (`image build --force` fetches the newest again); rollback removes
// the temporary directory only.

import { randomBytes } from "node:crypto";
import { basename, dirname } from "node:path";
import { z } from "zod";
import { ExitError, errorMessage } from "../../src/errors.js";
import { missingPrograms, programsFor } from "../../src/host/programs.js";
import { SPACE_MARGIN, spaceNeeded } from "../../src/image/http.js";
import { fetchSmall, freeBytesFor, removeTree, validStamp } from "../../src/image/image-host.js";
import { formatBytes } from "../../src/image/progress.js";
import {
  INDEX_PATH,
  MAX_INDEX_BYTES,
  MAX_PRODUCTS_BYTES,
  productsPaths,
  type StreamImage,
  selectImage,
  streamSourcePrefix,
  streamUrl,
} from "../../src/image/simplestreams.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";
import { type TmpIntent, tmpIntentSchema } from "./build.js";
import { place, transfer } from "./download.js";
import { cachedSource, squashTree } from "./oci.js";
import type { DownloadParams } from "./precheck.js";

/** Parameters of image.server. */
const serverParamsSchema = z.object({
  /** The image server (image.server): the root streams/v1/index.json is under. */
  server: z.string(),
  /** The product's alias (image.alias), e.g. debian/12. */
  alias: z.string(),
  /** The product's architecture: the host's, as Incus names it (amd64). */
  arch: z.string(),
  /** The squashfs to make in the image store. */
  path: z.string(),
  stamp: z.string(),
  /** The image store (free space is checked there). */
  store: z.string(),
  /** image.insecure: the server may be plain http. */
  insecure: z.boolean(),
  /** image.maxSize: a larger root squashfs is refused. */
  maxSize: z.number(),
  /** Fetch even when the image is cached (`image build --force`): replaced once the new one is complete. */
  force: z.boolean().optional(),
});
export type ServerParams = z.infer<typeof serverParamsSchema>;

/** What image.server returns. */
const serverResultSchema = z.object({ path: z.string(), sha256: z.string(), version: z.string() });
type ServerResult = z.infer<typeof serverResultSchema>;

const MIN = 60_000;

const prefixOf = (p: ServerParams) => streamSourcePrefix(p.server, p.alias, p.arch);
/** What the stamp records after the prefix: the product, version and root squashfs the alias resolved to. */
const resolvedOf = (img: StreamImage) => `${img.product} ${img.version} sha256:${img.sha256}`;

/** Download the image server's root squashfs and make it the image store's layer. */
export const imageServer = defineTask({
  kind: "image.server",
  journaled: { params: serverParamsSchema, intent: tmpIntentSchema, result: serverResultSchema },
  title: (p) => `Downloading ${p.alias} (${p.arch}) from the image server ${p.server}`,
  async check(ctx, p) {
    return !p.force && (await cachedSource(ctx, p, prefixOf(p))) !== undefined;
  },
  async prepare(_ctx, p) {
    return { tmp: `${dirname(p.path)}/.${basename(p.path)}.fetch-${randomBytes(4).toString("hex")}` };
  },
  run: (ctx, p, intent) =>
    // One download of an image at a time: a lab that waited for another's reuses what it made.
    withImageLock(ctx, p.path, "downloading", async () => {
      const resolved = !p.force && (await cachedSource(ctx, p, prefixOf(p)));
      if (resolved) {
        ctx.info(`${p.alias} was downloaded meanwhile (by another lab): reusing it`);
        const s = await validStamp(ctx, p.stamp, p.path);
        return { path: p.path, sha256: s?.sha256 ?? "", version: resolved.split(" ")[1] ?? "" };
      }
      return fetchImage(ctx, p, intent);
    }),
  async rollback(ctx, { intent }) {
    if (intent?.tmp) await removeTree(ctx, intent.tmp);
  },
  rollbackTitle: (p) => `Removing the temporary download directory of ${p.alias}`,
});

/** The image the alias names on the server: index.json, then each products file it names. */
async function findImage(ctx: TaskContext, p: ServerParams): Promise<StreamImage> {
  const { protocol } = new URL(p.server);
  if (protocol !== "https:" && !(protocol === "http:" && p.insecure))
    throw new ExitError(
      `image.server ${p.server}: the index must come over https (plain http only with image.insecure: true)`,
    );
  const bad = (what: string, e: unknown) =>
    new ExitError(`The image server's ${what} is refused: ${errorMessage(e)}`);
  const indexUrl = streamUrl(p.server, INDEX_PATH);
  ctx.info(`Reading ${indexUrl}${protocol === "http:" ? " (image.insecure: plain http)" : ""}`);
  const index = await fetchSmall(ctx, indexUrl, MAX_INDEX_BYTES, "not a simplestreams index");
  let paths: string[];
  try {
    paths = productsPaths(index.toString("utf8"));
  } catch (e) {
    throw bad("index", e);
  }
  for (const path of paths) {
    const url = streamUrl(p.server, path);
    const products = await fetchSmall(ctx, url, MAX_PRODUCTS_BYTES, "not a simplestreams products file");
    let img: StreamImage | undefined;
    try {
      img = selectImage(products.toString("utf8"), p.alias, p.arch);
    } catch (e) {
      throw bad(`products file ${path}`, e);
    }
    if (img) return img;
  }
  throw new ExitError(`${p.server} has no image with the alias ${p.alias} for ${p.arch}`);
}

async function fetchImage(ctx: TaskContext, p: ServerParams, intent: TmpIntent): Promise<ServerResult> {
  const missing = await missingPrograms(ctx.host, programsFor("server"));
  if (missing) throw new ExitError(`image.server: ${missing}`);
  const img = await findImage(ctx, p);
  ctx.info(
    `${p.alias} (${p.arch}) is ${img.product} version ${img.version}: ${img.path}${img.size === undefined ? "" : ` (${formatBytes(img.size)})`}`,
  );
  if (img.size !== undefined) {
    if (img.size > p.maxSize)
      throw new ExitError(
        `${img.path} is ${formatBytes(img.size)}, more than image.maxSize (${formatBytes(p.maxSize)}): raise it if this image is meant`,
      );
    const free = await freeBytesFor(ctx, p.store);
    const need = spaceNeeded(img.size, 0);
    if (free < need)
      throw new ExitError(
        `Not enough free space in ${p.store} for ${img.path}: it needs ${formatBytes(need)} (the download + ${formatBytes(SPACE_MARGIN)} margin), and ${formatBytes(free)} is free`,
      );
  }
  const { tmp } = intent;
  const tree = `${tmp}/tree`;
  const dp: DownloadParams = {
    url: streamUrl(p.server, img.path),
    path: `${tmp}/download.squashfs`,
    store: p.store,
    stamp: `${tmp}/download.stamp`,
    name: basename(img.path),
    sha256: img.sha256,
    maxSize: p.maxSize,
  };
  try {
    await ctx.host.fs.mkdir(dirname(p.path), 0o755);
    await ctx.host.fs.mkdir(tmp, 0o700);
    await transfer(ctx, dp);
    // Hashed from the file on disk; a mismatch deletes it and fails here.
    await place(ctx, dp, { sha256: img.sha256, from: `the index of ${p.server}` });
    ctx.info(`Unpacking ${dp.name}`);
    // As root into the 0700 directory: owners and modes as the image has them. unsquashfs (4.5.1
    // and later) refuses entry names with "/" or ".." and duplicate names, so nothing is written
    // outside the tree through a link of the image; the tree's links are not followed afterwards
    // (find, configureTree's confined root, mksquashfs all leave them links).
    await ctx.host.exec("unsquashfs", ["-no-progress", "-d", tree, dp.path], {
      signal: ctx.signal,
      timeoutMs: 60 * MIN,
    });
    // The download is no longer needed: free its space before the squashfs is made.
    await ctx.host.fs.rm(dp.path);
    const hashed = await squashTree(ctx, {
      root: tree,
      tree,
      squashfs: `${tmp}/root.squashfs`,
      path: p.path,
      stamp: p.stamp,
      source: `${prefixOf(p)}${resolvedOf(img)}`,
    });
    ctx.info(`${p.alias} ${img.version} is ${p.path} (${formatBytes(hashed.identity.size)})`);
    return { path: p.path, sha256: hashed.sha256, version: img.version };
  } finally {
    // A cleanup failure must not hide the download's own error; the journaled intent retries it.
    await removeTree(ctx, tmp).catch((e: unknown) =>
      ctx.info(`Could not remove ${tmp} (\`aplspawn run down\` retries): ${errorMessage(e)}`),
    );
  }
}
