// Task: the lab split over its hosts (config/cluster.ts), written on the control node where the
// cluster playbook reads it: each host's share as a config, a copy of the lab key, the playbook's
// vars and the plan the one inventory is made from. Its result, journaled, says which host holds
// what. Everything is in one directory of its own (the owner's, when the playbook runs as them).
import { stringify } from "yaml";
import { z } from "zod";
import {
  clusterMtu,
  copiedImages,
  hostImagesDir,
  overlayOverhead,
  ROUTES_PROTO,
  remoteAddresses,
  shareDir,
} from "../../config/cluster.js";
import { subnetOf } from "../../config/ip.js";
import { imageStore } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { clusterPlan, proxyCommand } from "../../src/cluster/hosts.js";
import { validStamp } from "../../src/image/image-host.js";
import { stampPath } from "../../src/image/stamp.js";
import { execAsOwner, ownerFs, ownerSchema } from "../../src/lab/owner.js";
import { defineTask, unmet } from "../../src/runner/task.js";

const paramsSchema = z.object({
  /** The directory on the control node. */
  dir: z.string(),
  /** Who runs the playbook: the files are theirs. */
  owner: ownerSchema.optional(),
  /** The lab key (root's), copied into dir for the playbook to copy to the hosts. */
  key: z.string(),
  /** The control node's aplspawn version: every host must run the same. */
  versionFile: z.string(),
  /** The lab's config (cluster.inventory absolute): the split is made at run, from the inventory. */
  config: z.custom<Config>((v) => typeof v === "object" && v !== null),
});
const resultSchema = z.object({
  vni: z.number(),
  shares: z.array(
    z.object({ host: z.string(), address: z.string(), bridge: z.string(), containers: z.array(z.string()) }),
  ),
});
export type SharesParams = z.infer<typeof paramsSchema>;

/** Splits the lab and writes each host's share. */
export const clusterShares = defineTask({
  kind: "cluster.shares",
  journaled: { params: paramsSchema, result: resultSchema.optional() },
  title: (p) => `Splitting lab ${p.config.lab} over the hosts of ${p.config.cluster?.group} (${p.dir})`,
  rollbackTitle: (p) => `Removing the hosts' shares (${p.dir})`,
  undoPaths: ({ params: p }) => [p.dir],
  // Written again at every up: the inventory may have changed.
  check: async () => unmet("the split follows the inventory: made at every up"),
  async run(ctx, p) {
    // The control node's file:// images, verified by the image steps before this one: each host
    // gets a copy pinned to the digest verified here.
    const images = copiedImages(p.config);
    const digests: Record<string, string> = {};
    for (const img of images) {
      const stamp = await validStamp(ctx, stampPath(imageStore(p.config), img.src), img.src);
      if (!stamp) throw new Error(`${img.src} is not verified on the control node (run getimage first)`);
      digests[img.src] = stamp.sha256;
    }
    const { plan, problems } = await clusterPlan(ctx, p.config, digests);
    if (!plan)
      throw new Error(`the lab does not fit its hosts: ${problems.map((q) => q.message).join("; ")}`);
    const [key, pub, pkg] = await Promise.all([
      ctx.host.fs.readFile(p.key),
      ctx.host.fs.readFile(`${p.key}.pub`),
      ctx.host.fs.readFile(p.versionFile),
    ]);
    const c = p.config;
    const vars = {
      aplspawn_targets: plan.shares.map((s) => s.host),
      aplspawn_version: (JSON.parse(pkg) as { version: string }).version,
      aplspawn_lab: c.lab,
      aplspawn_workdir: c.workdir,
      aplspawn_share_dir: shareDir(c),
      aplspawn_local: p.dir,
      aplspawn_bridge: c.network.bridge,
      aplspawn_overlay: plan.overlay,
      aplspawn_vni: plan.vni,
      aplspawn_vxlan: plan.vxlan,
      aplspawn_port: plan.port,
      aplspawn_mtu: clusterMtu(c),
      aplspawn_vxlan_overhead: overlayOverhead(c),
      aplspawn_peers: Object.fromEntries(plan.shares.map((s) => [s.host, s.address])),
      ...(plan.overlay === "routes"
        ? {
            // The lab's traffic crosses the hosts' network only between its hosts (a chain of the lab's own).
            aplspawn_rtchain: plan.chain,
            aplspawn_subnet: subnetOf(c.network.address),
            aplspawn_remote: remoteAddresses(plan),
            aplspawn_rtproto: ROUTES_PROTO,
          }
        : // Only the peers may send the lab's VNI to the VXLAN port (a chain of the lab's own).
          { aplspawn_vxchain: plan.chain }),
      // The control node's images each host gets a copy of (and its stamp there), and where.
      aplspawn_images: images.map((i) => ({ ...i, stamp: stampPath(imageStore(c), i.dest) })),
      aplspawn_images_dir: hostImagesDir(c),
    };
    const hosts = plan.shares.flatMap((s) =>
      s.containers.map((k) => ({ ...k, host: s.host, ...(s.ssh ? { proxy: proxyCommand(s.ssh) } : {}) })),
    );
    await ownerFs(ctx, p.owner).writeAll({
      dirs: [p.dir, `${p.dir}/shares`, `${p.dir}/inventories`, `${p.dir}/known_hosts.d`],
      files: [
        ...plan.shares.map((s) => ({
          path: `${p.dir}/shares/${s.host}.yaml`,
          text: stringify(s.config),
          mode: 0o600,
        })),
        { path: `${p.dir}/id_ed25519`, text: key, mode: 0o600 },
        { path: `${p.dir}/id_ed25519.pub`, text: pub, mode: 0o644 },
        { path: `${p.dir}/vars.json`, text: `${JSON.stringify(vars, null, 2)}\n`, mode: 0o600 },
        { path: `${p.dir}/plan.json`, text: `${JSON.stringify({ hosts }, null, 2)}\n`, mode: 0o600 },
      ],
    });
    for (const s of plan.shares)
      ctx.info(`${s.host} (${s.address}): ${s.containers.map((k) => k.name).join(", ")}`);
    return {
      vni: plan.vni,
      shares: plan.shares.map((s) => ({
        host: s.host,
        address: s.address,
        bridge: s.bridgeAddress,
        containers: s.containers.map((k) => k.name),
      })),
    };
  },
  async rollback(ctx, { params: p }) {
    if (p.owner) await execAsOwner(ctx, p.owner, "rm", ["-rf", "--", p.dir]);
    else await ctx.host.fs.rm(p.dir);
  },
});
