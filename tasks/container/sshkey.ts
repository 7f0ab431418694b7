// The lab's SSH key pair (ed25519, no passphrase), generated with ssh-keygen when absent. A key the
// user named in containers.sshKey and that exists is used as it is and never touched. Like the
// upper layers, a generated key outlives `run down`; `--purge` and `cleanup` remove it.
import { z } from "zod";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
const sshKeyParamsSchema = z.object({ path: z.string(), comment: z.string() });
export type SshKeyParams = z.infer<typeof sshKeyParamsSchema>;

/** Generates the lab key pair. */
export const labSshKey = defineTask<SshKeyParams, null>({
  kind: "lab.sshkey",
  journaled: { params: sshKeyParamsSchema },
  // The lab's key, in every kept upper layer's authorized_keys: kept with them.
  kept: true,
  title: (p) => `Reading ssh key ${p.path}`,
  rollbackTitle: (p) => `Deleting ssh key ${p.path}`,
  async check(ctx, p) {
    return (await ctx.host.fs.exists(p.path)) && (await ctx.host.fs.exists(`${p.path}.pub`));
  },
  async run(ctx, p) {
    const h = ctx.host;
    if ((await h.fs.exists(p.path)) !== (await h.fs.exists(`${p.path}.pub`)))
      throw new Error(`${p.path} and ${p.path}.pub must both exist or both be absent`);
    await h.fs.mkdir(p.path.slice(0, p.path.lastIndexOf("/")) || "/", 0o700);
    await h.exec("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", p.comment, "-f", p.path], {
      signal: ctx.signal,
    });
    return null;
  },
  async rollback(ctx, { params: p }) {
    await ctx.host.fs.rm(p.path);
    await ctx.host.fs.rm(`${p.path}.pub`);
  },
});
