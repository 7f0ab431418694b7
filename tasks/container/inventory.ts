// The Ansible inventory file of the lab, written atomically (temp file, fsync, rename).
import { readOr } from "../../src/lab/files.js";
import { type InventorySpec, renderInventory } from "../../src/lab/inventory.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters: the file and everything it says. */
export interface InventoryParams extends InventorySpec {
  /** Absolute path of the file. */
  path: string;
}

/** Writes the inventory. */
export const labInventory = defineTask<InventoryParams, null>({
  kind: "lab.inventory",
  title: (p) => `Generating ansible inventory file ${p.path}`,
  rollbackTitle: (p) => `Removing ansible inventory file ${p.path}`,
  async check(ctx, p) {
    return (await readOr(ctx.host, p.path, "\0absent")) === renderInventory(p);
  },
  async run(ctx, p) {
    await ctx.host.fs.writeFile(p.path, renderInventory(p), 0o644);
    return null;
  },
  async rollback(ctx, { params: p }) {
    // Only ours: a file the user has since rewritten is left alone.
    const text = await readOr(ctx.host, p.path, "\0absent");
    if (text.startsWith("# Written by aplspawn.")) await ctx.host.fs.rm(p.path);
    // Ansible's master sockets for the lab (their masters end with the containers, stopped by now).
    if (p.controlPathDir) await ctx.host.fs.rm(p.controlPathDir);
  },
});
