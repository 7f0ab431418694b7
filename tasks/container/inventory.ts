// The Ansible inventory file of the lab, written atomically (temp file, fsync, rename).
import { z } from "zod";
import { INVENTORY_MARK, inventorySpecSchema, renderInventory } from "../../src/lab/inventory.js";
import { execAsOwner, type Owner, ownerFs, ownerSchema } from "../../src/lab/owner.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Journaled parameters: the file and everything it says. */
const inventoryParamsSchema = inventorySpecSchema.extend({
  /** Absolute path of the file. */
  path: z.string(),
  /** The lab's owner: the file (and the masters' directory) are theirs, written as them. */
  owner: ownerSchema.optional(),
});
export type InventoryParams = z.infer<typeof inventoryParamsSchema>;

/**
 * Ask each of Ansible's ssh masters for the lab to exit, then remove their directory. A master
 * keeps its connection for ControlPersist (60 s) after Ansible is done; once the containers are
 * gone it would wait that long on a dead connection.
 */
async function closeMasters(ctx: TaskContext, dir: string, owner?: Owner): Promise<void> {
  if (owner) {
    // The owner's masters, asked as the owner; their directory is theirs to list.
    const r = await execAsOwner(ctx, owner, "ls", ["-A", "--", dir], { readOnly: true });
    const sockets = r.exitCode === 0 ? r.stdout.split("\n").filter(Boolean) : [];
    await Promise.all(
      sockets.map((s) =>
        execAsOwner(ctx, owner, "ssh", ["-o", `ControlPath=${dir}/${s}`, "-O", "exit", "aplspawn-lab"], {
          timeoutMs: 10_000,
        }),
      ),
    );
    await execAsOwner(ctx, owner, "rm", ["-rf", "--", dir]);
    return;
  }
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
  owner?: Owner,
): Promise<void> {
  const fs = ownerFs(ctx, owner);
  // Two independent things, each a process or two as the owner: at once.
  await Promise.all([
    (async () => {
      if (ours((await fs.read(path)) ?? "\0absent")) await fs.rm(path);
    })(),
    controlPathDir ? closeMasters(ctx, controlPathDir, owner) : undefined,
  ]);
}

/** Writes the inventory. */
export const labInventory = defineTask({
  kind: "lab.inventory",
  journaled: { params: inventoryParamsSchema },
  title: (p) => `Generating ansible inventory file ${p.path}`,
  rollbackTitle: (p) => `Removing ansible inventory file ${p.path}`,
  // Wherever the config put it (relative to the directory `up` ran in): removed only while it
  // still starts with aplspawn's mark, so a journal naming another file cannot have it removed.
  undoPaths: ({ params: p }) => [{ only: p.path }],
  async check(ctx, p) {
    return (await ownerFs(ctx, p.owner).read(p.path)) === renderInventory(p);
  },
  async run(ctx, p) {
    // The lab's directory of ssh masters (Ansible's and status's), gone with the inventory.
    await ownerFs(ctx, p.owner).writeAll({
      dirs: p.controlPathDir ? [p.controlPathDir] : [],
      files: [{ path: p.path, text: renderInventory(p), mode: 0o644 }],
    });
    return null;
  },
  async rollback(ctx, { params: p }) {
    await removeInventory(ctx, p.path, p.controlPathDir, (text) => text.startsWith(INVENTORY_MARK), p.owner);
  },
});
