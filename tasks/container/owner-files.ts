// The lab's owner's copies of what using the lab needs (config/paths.ts ownerFiles): the lab key
// and known_hosts, in a directory of theirs with the directory for Ansible's ssh masters. Written
// as the owner (src/lab/owner.ts): nothing in their home is touched by root. Rollback asks their
// masters to exit and removes the copies.
import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import { execAsOwner, ownerFs, ownerSchema } from "../../src/lab/owner.js";
import { defineTask } from "../../src/runner/task.js";

const ownerFilesParamsSchema = z.object({
  owner: ownerSchema,
  dir: z.string(),
  controlPathDir: z.string(),
  /** Root's file (or a text) → the owner's copy, with its mode. */
  copies: z.array(
    z.object({
      from: z.string().optional(),
      text: z.string().optional(),
      to: z.string(),
      mode: z.number().int(),
    }),
  ),
});
export type OwnerFilesParams = z.infer<typeof ownerFilesParamsSchema>;

/** What a copy holds: root's file, or the text given. */
async function source(ctx: HostContext, c: { from?: string | undefined; text?: string | undefined }) {
  if (c.text !== undefined) return c.text;
  if (c.from === undefined) throw new Error("a copy names neither a file nor a text");
  return ctx.host.fs.readFile(c.from);
}

/** Gives the owner their copies. */
export const labOwnerFiles = defineTask({
  kind: "lab.owner-files",
  journaled: { params: ownerFilesParamsSchema },
  title: (p) => `Giving ${p.owner.name} the lab key and known_hosts in ${p.dir}`,
  rollbackTitle: (p) => `Removing ${p.owner.name}'s copies of the lab key and known_hosts in ${p.dir}`,
  async check(ctx, p) {
    const theirs = ownerFs(ctx, p.owner);
    for (const c of p.copies) {
      const want = await source(ctx, c).catch(() => undefined);
      if (want === undefined || (await theirs.read(c.to)) !== want) return false;
    }
    return (
      (await execAsOwner(ctx, p.owner, "test", ["-d", p.controlPathDir], { readOnly: true })).exitCode === 0
    );
  },
  async run(ctx, p) {
    const theirs = ownerFs(ctx, p.owner);
    const files = [];
    for (const c of p.copies) files.push({ path: c.to, text: await source(ctx, c), mode: c.mode });
    await theirs.writeAll({ dirs: [p.dir, p.controlPathDir], files });
    return null;
  },
  async rollback(ctx, { params: p }) {
    const theirs = ownerFs(ctx, p.owner);
    await theirs.rm(...p.copies.map((c) => c.to));
    await theirs.rmdir(p.controlPathDir, p.dir);
  },
});
