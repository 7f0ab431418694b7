// The Ansible inventory file of the lab, written atomically (temp file, fsync, rename).
import { z } from "zod";
import { readOr } from "../../src/host/files.js";
import { INVENTORY_MARK, inventorySpecSchema, renderInventory } from "../../src/lab/inventory.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Journaled parameters: the file and everything it says. */
const inventoryParamsSchema = inventorySpecSchema.extend({
  /** Absolute path of the file. */
  path: z.string(),
});
export type InventoryParams = z.infer<typeof inventoryParamsSchema>;

/**
 * Ask each of Ansible's ssh masters for the lab to exit, then remove their directory. A master
 * keeps its connection for ControlPersist (60 s) after Ansible is done; once the containers are
 * gone it would wait that long on a dead connection.
 */
async function closeMasters(ctx: TaskContext, dir: string): Promise<void> {
  const sockets = await ctx.host.fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    sockets.map((s) =>
      ctx.host.exec("ssh", ["-o", `ControlPath=${dir}/${s}`, "-O", "exit", "aplspawn-lab"], {
        allowFail: true,
        timeoutMs: 10_000,
      }),
    ),
  );
  await ctx.host.fs.rm(dir);
}

/**
 * Remove the inventory at `path` when `ours` says aplspawn wrote it (a file the user has since
 * rewritten is left alone), then close the lab's ssh masters and remove their directory.
 */
export async function removeInventory(
  ctx: TaskContext,
  path: string,
  controlPathDir: string | undefined,
  ours: (text: string) => boolean,
): Promise<void> {
  if (ours(await readOr(ctx.host, path, "\0absent"))) await ctx.host.fs.rm(path);
  if (controlPathDir) await closeMasters(ctx, controlPathDir);
}

/** Writes the inventory. */
export const labInventory = defineTask<InventoryParams, null>({
  kind: "lab.inventory",
  journaled: { params: inventoryParamsSchema },
  title: (p) => `Generating ansible inventory file ${p.path}`,
  rollbackTitle: (p) => `Removing ansible inventory file ${p.path}`,
  async check(ctx, p) {
    return (await readOr(ctx.host, p.path, "\0absent")) === renderInventory(p);
  },
  async run(ctx, p) {
    await ctx.host.fs.writeFile(p.path, renderInventory(p), 0o644);
    // The lab's directory of ssh masters (Ansible's and status's), gone with the inventory.
    if (p.controlPathDir) await ctx.host.fs.mkdir(p.controlPathDir, 0o700);
    return null;
  },
  async rollback(ctx, { params: p }) {
    await removeInventory(ctx, p.path, p.controlPathDir, (text) => text.startsWith(INVENTORY_MARK));
  },
});
