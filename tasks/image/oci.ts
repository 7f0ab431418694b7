// image.oci: an OCI image from a registry (image.oci) as the lab's read-only lower layer. skopeo
// copies it into an OCI layout (every blob checked against its digest; credentials from the
// containers auth file, skopeo's own lookup), umoci unpacks it as root into a directory of its own
// (umoci resolves every path inside the root: a layer's links cannot lead a write outside it), the
// tree is cleaned of what must not reach a container (block and character devices; the files every
// container makes its own: machine-id, host keys, hostname), and mksquashfs flattens it into the
// image store, where it is attached like any image. All of it happens in a temporary directory
// beside the target (0700: nothing in the hostile tree is reachable by other users meanwhile) and
// the squashfs is renamed into place only when complete: a failed pull keeps nothing. The image is
// a cache: rollback removes the temporary directory only.
import { randomBytes } from "node:crypto";
import { basename, dirname } from "node:path";
import { z } from "zod";
import { ExitError, errorMessage } from "../../src/errors.js";
import type { HostContext } from "../../src/host/host.js";
import { missingPrograms, programsFor } from "../../src/host/programs.js";
import {
  type Hashed,
  hashIntoPlace,
  removeTree,
  validStamp,
  writeStamp,
} from "../../src/image/image-host.js";
import { layoutManifestDigest, ociSource } from "../../src/image/oci-ref.js";
import { formatBytes } from "../../src/image/progress.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";
import { configureTree, lineReporter, makeSquashfs, type TmpIntent, tmpIntentSchema } from "./build.js";

/** Parameters of image.oci. */
const ociParamsSchema = z.object({
  /** The image reference (image.oci). */
  ref: z.string(),
  /** The squashfs to make in the image store. */
  path: z.string(),
  stamp: z.string(),
  /** image.insecure: the registry may be plain http (or https with a certificate nothing vouches for). */
  insecure: z.boolean(),
  /** Pull even when the image is cached (`image build --force`): it is replaced once the new one is complete. */
  force: z.boolean().optional(),
});
export type OciParams = z.infer<typeof ociParamsSchema>;

/** What image.oci returns. */
const ociResultSchema = z.object({ path: z.string(), sha256: z.string(), manifest: z.string() });
type OciResult = z.infer<typeof ociResultSchema>;

const MIN = 60_000;
/** The stamp's record of where the file came from. */
const sourceOf = (ref: string, manifest: string) => `oci:${ref}@${manifest}`;

/**
 * What a cached image resolved to (the rest of its stamp's source after `prefix`), when its stamp
 * still describes it and its source starts with `prefix` (image.oci's reference, image.server's
 * server and alias).
 */
export async function cachedSource(
  ctx: HostContext,
  p: { stamp: string; path: string },
  prefix: string,
): Promise<string | undefined> {
  const s = await validStamp(ctx, p.stamp, p.path);
  return s?.source?.startsWith(prefix) ? s.source.slice(prefix.length) : undefined;
}

/** The cached image, when its stamp still describes it and names this reference. */
const cachedManifest = (ctx: HostContext, p: OciParams) => cachedSource(ctx, p, `oci:${p.ref}@`);

/** Pull the image and flatten it into the image store. */
export const imageOci = defineTask({
  kind: "image.oci",
  journaled: { params: ociParamsSchema, intent: tmpIntentSchema, result: ociResultSchema },
  title: (p) => `Pulling OCI image ${p.ref} (skopeo → umoci → squashfs)`,
  async check(ctx, p) {
    return !p.force && (await cachedManifest(ctx, p)) !== undefined;
  },
  async prepare(_ctx, p) {
    return { tmp: `${dirname(p.path)}/.${basename(p.path)}.pull-${randomBytes(4).toString("hex")}` };
  },
  run: (ctx, p, intent) =>
    // One pull of an image at a time: a lab that waited for another's pull reuses what it made.
    withImageLock(ctx, p.path, "pulling", async () => {
      const manifest = !p.force && (await cachedManifest(ctx, p));
      if (manifest) {
        ctx.info(`${p.ref} was pulled meanwhile (by another lab): reusing it`);
        const s = await validStamp(ctx, p.stamp, p.path);
        return { path: p.path, sha256: s?.sha256 ?? "", manifest };
      }
      return pull(ctx, p, intent);
    }),
  async rollback(ctx, { intent }) {
    if (intent?.tmp) await removeTree(ctx, intent.tmp);
  },
  rollbackTitle: (p) => `Removing the temporary pull directory of ${p.ref}`,
});

/**
 * A hostile root tree made into the image store's read-only layer: device nodes dropped, configured
 * as every image is (configureTree), flattened by mksquashfs into `squashfs` (beside the target),
 * the tree removed, and the squashfs hashed, renamed into place and stamped with its source.
 * image.oci and image.server (tasks/image/simplestreams.ts) both end with it.
 */
export async function squashTree(
  ctx: TaskContext,
  t: { root: string; tree: string; squashfs: string; path: string; stamp: string; source: string },
  o: { whiteouts?: boolean } = {},
): Promise<Hashed> {
  await dropDevices(ctx, t.root, o.whiteouts === true);
  await configureTree(ctx, t.root);
  await makeSquashfs(ctx, t.root, t.squashfs);
  await removeTree(ctx, t.tree);
  const hashed = await hashIntoPlace(ctx, t.squashfs, t.path, { missing: "mksquashfs made no output" });
  await writeStamp(ctx, t.stamp, t.path, hashed, undefined, t.source);
  return hashed;
}

/**
 * Device nodes come from the runtime (systemd-nspawn makes /dev), never from an image: a node of the
 * host's disk in a layer would be one in every container. find does not follow links. `whiteouts`:
 * the tree is an overlay upper layer (image.packages), whose character devices 0:0 are overlayfs
 * whiteouts (a file the layer deletes from the image): those stay, every other node goes.
 */
async function dropDevices(ctx: TaskContext, root: string, whiteouts: boolean): Promise<void> {
  const o = { signal: ctx.signal, timeoutMs: 30 * MIN };
  if (!whiteouts) {
    await ctx.host.exec("find", [root, "-xdev", "(", "-type", "b", "-o", "-type", "c", ")", "-delete"], o);
    return;
  }
  await ctx.host.exec("find", [root, "-xdev", "-type", "b", "-delete"], o);
  // stat without -L describes the node itself; the tree is a closed 0700 directory nothing runs in.
  const chars = await ctx.host.exec(
    "find",
    [root, "-xdev", "-type", "c", "-exec", "stat", "--printf", "%t:%T\\t%n\\0", "{}", "+"],
    { ...o, readOnly: true },
  );
  for (const entry of chars.stdout.split("\0")) {
    const tab = entry.indexOf("\t");
    if (tab > 0 && entry.slice(0, tab) !== "0:0") await ctx.host.fs.rm(entry.slice(tab + 1));
  }
}

async function pull(ctx: TaskContext, p: OciParams, intent: TmpIntent): Promise<OciResult> {
  const missing = await missingPrograms(ctx.host, programsFor("oci"));
  if (missing) throw new ExitError(`image.oci: ${missing}`);
  const { tmp } = intent;
  const layout = `${tmp}/layout`;
  const bundle = `${tmp}/bundle`;
  const squashfs = `${tmp}/root.squashfs`;
  try {
    await ctx.host.fs.mkdir(dirname(p.path), 0o755);
    await ctx.host.fs.mkdir(tmp, 0o700);
    ctx.info(
      `skopeo copy ${ociSource(p.ref)}${p.insecure ? " (image.insecure: TLS not verified, plain http allowed)" : ""}`,
    );
    // skopeo checks every blob it copies against the digest the manifest gives (and the manifest
    // against a digest in the reference): a changed byte fails the copy.
    await ctx.host.exec(
      "skopeo",
      [
        "copy",
        "--retry-times",
        "3",
        ...(p.insecure ? ["--src-tls-verify=false"] : []),
        "--",
        ociSource(p.ref),
        `oci:${layout}:image`,
      ],
      { signal: ctx.signal, timeoutMs: 60 * MIN, onLine: lineReporter(ctx) },
    );
    const manifest = layoutManifestDigest(await ctx.host.fs.readFile(`${layout}/index.json`));
    if (!manifest) throw new ExitError(`skopeo left no single manifest in ${layout}/index.json`);
    ctx.info(`Unpacking ${p.ref}@${manifest}`);
    // As root (not --rootless): owners, modes and device numbers as the image has them; umoci makes
    // the bundle go-rwx, and the tmp directory above is 0700 as well.
    await ctx.host.exec("umoci", ["unpack", "--image", `${layout}:image`, "--", bundle], {
      signal: ctx.signal,
      timeoutMs: 60 * MIN,
    });
    // The blobs are no longer needed: free their space before the squashfs is made.
    await removeTree(ctx, layout);
    const hashed = await squashTree(ctx, {
      root: `${bundle}/rootfs`,
      tree: bundle,
      squashfs,
      path: p.path,
      stamp: p.stamp,
      source: sourceOf(p.ref, manifest),
    });
    ctx.info(`Pulled ${p.ref} (manifest ${manifest}) into ${p.path} (${formatBytes(hashed.identity.size)})`);
    return { path: p.path, sha256: hashed.sha256, manifest };
  } finally {
    // A cleanup failure must not hide the pull's own error; the journaled intent retries it.
    await removeTree(ctx, tmp).catch((e: unknown) =>
      ctx.info(`Could not remove ${tmp} (\`aplspawn run down\` retries): ${errorMessage(e)}`),
    );
  }
}
