// image.packages: what a lab needs in its image (image.packages; by default sshd, python3 and sudo
// when the image lacks sshd or python3), installed once by the image's own package manager into a
// read-only layer cached in the image store, keyed by the image's digest, the manager and the
// package list (src/image/packages.ts). The install runs as the container's root in a throwaway
// container: an overlay of the attached image (lower) and a temporary upper directory, booted by
// systemd-nspawn with no init, in a network namespace of its own whose veth is a port of the lab's
// bridge (the lab's NAT and rules apply to it as to any container). The upper directory, whiteouts
// kept, is cleaned as every image tree is and flattened by mksquashfs (squashTree); all of it in a
// 0700 temporary directory beside the layer, renamed into place only when complete: a failed
// install keeps nothing. The layer is a cache: rollback removes the temporary state only.
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { z } from "zod";
import { ExitError, errorMessage } from "../../src/errors.js";
import type { HostContext, RootFs } from "../../src/host/host.js";
import { RootFsError } from "../../src/host/host.js";
import { mountAt, readMounts } from "../../src/host/mounts.js";
import { holdNetns, netnsPath, releaseNetns } from "../../src/host/netns-holder.js";
import { fileIdentity, removeTree, validStamp } from "../../src/image/image-host.js";
import {
  installScript,
  layerKey,
  layerPath,
  OS_RELEASE_MAX,
  OS_RELEASE_PATHS,
  type PackageManager,
  PYTHON3_PATHS,
  packageManagerOf,
  packagesToInstall,
  parseOsRelease,
  SSHD_PATHS,
  unknownManagerMessage,
} from "../../src/image/packages.js";
import { formatBytes } from "../../src/image/progress.js";
import { stampPath } from "../../src/image/stamp.js";
import { withImageLock } from "../../src/image/store-lock.js";
import { printable } from "../../src/runner/report.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";
import { addressBatch, HOST0 } from "../container/address.js";
import { lineReporter } from "./build.js";
import { squashTree } from "./oci.js";

/** What says which layer an image needs (wantedLayer): shared by image.packages and image.layer. */
export const layerOfImageSchema = z.object({
  /** The image file, its stamp, and where its root is mounted (image.lower). */
  image: z.string(),
  imageStamp: z.string(),
  lower: z.string(),
  /** The image store (the layer goes to its layers/ directory). */
  store: z.string(),
  /** image.packages; undefined: the default set when the image lacks sshd or python3. */
  packages: z.array(z.string()).optional(),
});

/** Parameters of image.packages. */
const packagesParamsSchema = layerOfImageSchema.extend({
  /** The lab's bridge, the builder's address on it (with prefix) and the gateway (the bridge's). */
  bridge: z.string(),
  address: z.string(),
  gateway: z.string(),
});
export type PackagesParams = z.infer<typeof packagesParamsSchema>;

/**
 * Journaled before the install starts: the temporary directory (which also records the holder of
 * the builder's network namespace) and the veth to remove. `netns` is a named namespace an older
 * aplspawn made (`ip netns add`), deleted if a journal names one.
 */
const packagesIntentSchema = z.object({ tmp: z.string(), veth: z.string(), netns: z.string().optional() });
type PackagesIntent = z.infer<typeof packagesIntentSchema>;

/** The layer a lab's image needs. */
export interface WantedLayer {
  key: string;
  path: string;
  stamp: string;
  manager: PackageManager;
  packages: readonly string[];
}

const MIN = 60_000;

async function present(r: RootFs, paths: readonly string[]): Promise<boolean> {
  for (const p of paths) {
    // A link is not followed (the image is hostile): /usr/sbin/sshd as a link counts as there.
    const kind = await r.kind(p).catch((e: unknown) => {
      if (e instanceof RootFsError) return undefined;
      throw e;
    });
    if (kind !== undefined) return true;
  }
  return false;
}

/** What the image's os-release says, read through its confined root (links never followed). */
async function osRelease(r: RootFs) {
  for (const p of OS_RELEASE_PATHS) {
    const text = await r.readFile(p, OS_RELEASE_MAX).catch((e: unknown) => {
      if (e instanceof RootFsError) return undefined;
      throw e;
    });
    if (text !== undefined) return parseOsRelease(text);
  }
  return undefined;
}

/** The image's identity for the key: its stamped digest, else its file identity. */
async function imageDigest(ctx: HostContext, p: Pick<PackagesParams, "image" | "imageStamp">) {
  const s = await validStamp(ctx, p.imageStamp, p.image);
  if (s?.sha256) return s.sha256;
  const id = await fileIdentity(ctx, p.image);
  if (!id) throw new Error(`the image ${p.image} is not there`);
  return `file:${p.image}:${id.dev}:${id.ino}:${id.size}:${id.ctime}`;
}

/**
 * The layer the attached image needs, read from its mounted root; undefined when none (image.packages
 * is [], or unset and the image has sshd and python3). Shared by image.packages and image.layer.
 */
export async function wantedLayer(
  ctx: HostContext,
  p: z.infer<typeof layerOfImageSchema>,
): Promise<WantedLayer | undefined> {
  if (p.packages?.length === 0) return undefined;
  const r = ctx.host.root(p.lower, "image");
  // Not attached (a dry run previews on an empty lower directory): nothing to tell yet.
  if ((await r.kind("/usr")) !== "dir") return undefined;
  const os = await osRelease(r);
  const manager = os && packageManagerOf(os);
  const has = { sshd: await present(r, SSHD_PATHS), python3: await present(r, PYTHON3_PATHS) };
  const packages = packagesToInstall(p.packages, has, manager);
  if (packages.length === 0) return undefined;
  if (!manager) throw new ExitError(unknownManagerMessage(os));
  const key = layerKey(await imageDigest(ctx, p), manager, packages);
  const path = layerPath(p.store, key);
  return { key, path, stamp: stampPath(p.store, path), manager, packages };
}

/** The stamp's record of a layer's origin: the image it is for (image.purge finds it by that), manager, packages. */
export const layerSource = (image: string, l: Pick<WantedLayer, "manager" | "packages">) =>
  `packages:${image} ${l.manager} ${[...l.packages].sort().join(",")}`;

/** Whether the layer is in the store, its stamp still describing it. */
const cached = async (ctx: HostContext, l: WantedLayer) =>
  (await validStamp(ctx, l.stamp, l.path)) !== undefined;

/** Install the lab's packages into a cached layer, unless it is cached or not needed. */
export const imagePackages = defineTask({
  kind: "image.packages",
  journaled: { params: packagesParamsSchema, intent: packagesIntentSchema },
  title: (p) => `Installing the lab's packages into a layer for ${p.image} (image.packages)`,
  rollbackTitle: (p) => `Removing the temporary install of the packages layer of ${p.image}`,
  async check(ctx, p) {
    const l = await wantedLayer(ctx, p);
    return !l || (await cached(ctx, l));
  },
  async prepare(_ctx, p) {
    const id = randomBytes(4).toString("hex");
    return { tmp: `${p.store}/layers/.install-${id}`, veth: `vpkg${id}` };
  },
  async run(ctx, p, intent) {
    const l = await wantedLayer(ctx, p);
    if (!l) return null;
    return withImageLock(ctx, l.path, "installing packages into", async () => {
      if (await cached(ctx, l)) ctx.info(`${l.path} was made meanwhile (by another lab): reusing it`);
      else await install(ctx, p, l, intent);
      return null;
    });
  },
  async rollback(ctx, { intent }) {
    if (intent) await cleanUp(ctx, intent);
  },
});

async function cleanUp(ctx: TaskContext, i: PackagesIntent): Promise<void> {
  const merged = `${i.tmp}/merged`;
  if (mountAt(await readMounts(ctx.host), merged))
    await ctx.host.exec("umount", ["--", merged], { signal: ctx.signal });
  // Ending the holder ends the namespace, and the veth whose peer is in it.
  if (await ctx.host.fs.exists(i.tmp)) await releaseNetns(ctx.host, i.tmp);
  await ctx.host.exec("ip", ["link", "del", i.veth], { allowFail: true });
  if (i.netns) await ctx.host.exec("ip", ["netns", "del", i.netns], { allowFail: true });
  await removeTree(ctx, i.tmp);
}

/**
 * The builder's network namespace, held by a process of ours (not a named one under /run/netns,
 * which every namespace of the host would see): a veth whose host end is a port of the lab's
 * bridge, its peer host0 inside with the builder's address and the lab's gateway. The host's `ip`
 * enters the namespace's network only (nsenter --net): it is still empty, nothing of the image runs
 * in it yet.
 */
async function builderNetwork(ctx: TaskContext, p: PackagesParams, i: PackagesIntent): Promise<string> {
  const holder = await holdNetns(ctx.host, i.tmp, ctx.signal);
  const ns = netnsPath(holder);
  const o = { signal: ctx.signal };
  await ctx.host.exec(
    "ip",
    ["link", "add", i.veth, "type", "veth", "peer", "name", HOST0, "netns", String(holder.pid)],
    o,
  );
  await ctx.host.exec("ip", ["link", "set", i.veth, "master", p.bridge, "up"], o);
  await ctx.host.exec("nsenter", [`--net=${ns}`, "--", "ip", "-batch", "-"], {
    ...o,
    input: addressBatch({ address: p.address, gateway: p.gateway }),
  });
  return ns;
}

async function install(ctx: TaskContext, p: PackagesParams, l: WantedLayer, i: PackagesIntent) {
  const [upper, work, merged] = ["upper", "work", "merged"].map((d) => `${i.tmp}/${d}`) as [
    string,
    string,
    string,
  ];
  try {
    await ctx.host.fs.mkdir(dirname(i.tmp), 0o700);
    await ctx.host.fs.mkdir(i.tmp, 0o700);
    for (const d of [upper, work, merged]) await ctx.host.fs.mkdir(d, 0o755);
    await ctx.host.exec(
      "mount",
      ["-t", "overlay", "overlay", "-o", `lowerdir=${p.lower},upperdir=${upper},workdir=${work}`, merged],
      { signal: ctx.signal },
    );
    const netns = await builderNetwork(ctx, p, i);
    ctx.info(
      `${l.manager}: installing ${l.packages.join(" ")} (as the container's root, through the lab's NAT)`,
    );
    // The package manager and the maintainer scripts are the image's code: they run as any lab
    // container does, in their own namespaces, on the lab's network only.
    // The last lines the install printed: what a failure is reported with.
    const tail: string[] = [];
    const report = lineReporter(ctx);
    const r = await ctx.host.exec(
      "systemd-nspawn",
      [
        "--quiet",
        "--register=no",
        "--keep-unit",
        `--machine=aplspawn-pkg-${i.veth.slice(4)}`,
        `--directory=${merged}`,
        `--network-namespace-path=${netns}`,
        "--link-journal=no",
        "--resolv-conf=copy-host",
        "--timezone=off",
        "--as-pid2",
        "--",
        "/bin/sh",
        "-c",
        installScript(l.manager, l.packages),
      ],
      {
        signal: ctx.signal,
        timeoutMs: 60 * MIN,
        allowFail: true,
        onLine: (l) => {
          report(l);
          tail.push(printable(l));
          if (tail.length > 15) tail.shift();
        },
      },
    );
    if (r.exitCode !== 0)
      throw new ExitError(
        `image.packages: ${l.manager} failed to install ${l.packages.join(" ")} in the image (exit ${r.exitCode}); its last lines:\n${tail.map((t) => `  ${t}`).join("\n")}`,
      );
    await ctx.host.exec("umount", ["--", merged], { signal: ctx.signal });
    // The host's resolv.conf was lent for the install only: not part of the layer.
    await ctx.host.root(upper, "packages layer").remove("/etc/resolv.conf");
    const hashed = await squashTree(
      ctx,
      {
        root: upper,
        tree: upper,
        squashfs: `${i.tmp}/layer.squashfs`,
        path: l.path,
        stamp: l.stamp,
        source: layerSource(p.image, l),
      },
      { whiteouts: true },
    );
    ctx.info(`Made the packages layer ${l.path} (${formatBytes(hashed.identity.size)})`);
  } catch (e) {
    throw e instanceof ExitError ? e : new ExitError(`image.packages: ${errorMessage(e)}`);
  } finally {
    await cleanUp(ctx, i).catch((e: unknown) =>
      ctx.info(`Could not remove ${i.tmp} (\`aplspawn run down\` retries): ${errorMessage(e)}`),
    );
  }
}
