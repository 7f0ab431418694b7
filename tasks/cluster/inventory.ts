// Task: the one inventory of a lab across hosts, on the control node: every container at its lab
// address, reached through its host (an ssh ProxyCommand as Ansible reaches the host), its host key
// pinned to the known_hosts merged from the hosts' (ansible/cluster-up.yml).
import { z } from "zod";
import { clusterPlanFileSchema } from "../../src/cluster/report.js";
import { INVENTORY_MARK, inventorySpecSchema, renderInventory } from "../../src/lab/inventory.js";
import { ownerFs, ownerSchema } from "../../src/lab/owner.js";
import { defineTask } from "../../src/runner/task.js";
import { removeInventory } from "../container/inventory.js";

const paramsSchema = inventorySpecSchema.omit({ hosts: true }).extend({
  path: z.string(),
  /** The shares task's directory: plan.json names the containers. */
  dir: z.string(),
  owner: ownerSchema.optional(),
});
export type ClusterInventoryParams = z.infer<typeof paramsSchema>;

async function render(ctx: Parameters<typeof ownerFs>[0], p: ClusterInventoryParams): Promise<string> {
  const text = await ownerFs(ctx, p.owner).read(`${p.dir}/plan.json`);
  if (text === undefined) throw new Error(`${p.dir}/plan.json cannot be read: the split was not written`);
  const { hosts } = clusterPlanFileSchema.parse(JSON.parse(text));
  return renderInventory({ ...p, hosts: hosts.map(({ set: _set, host: _host, ...h }) => h) });
}

/** Writes the one inventory. */
export const clusterInventory = defineTask({
  kind: "cluster.inventory",
  journaled: { params: paramsSchema },
  title: (p) => `Generating the lab's one ansible inventory file ${p.path}`,
  rollbackTitle: (p) => `Removing ansible inventory file ${p.path}`,
  undoPaths: ({ params: p }) => [{ only: p.path }],
  async check(ctx, p) {
    const want = await render(ctx, p).catch(() => undefined);
    return want !== undefined && (await ownerFs(ctx, p.owner).read(p.path)) === want;
  },
  async run(ctx, p) {
    await ownerFs(ctx, p.owner).writeAll({
      dirs: [p.controlPathDir],
      files: [{ path: p.path, text: await render(ctx, p), mode: 0o644 }],
    });
    return null;
  },
  async rollback(ctx, { params: p }) {
    await removeInventory(ctx, p.path, p.controlPathDir, (t) => t.startsWith(INVENTORY_MARK), p.owner);
  },
});
