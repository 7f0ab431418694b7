// The lab's SSH key pair (ed25519, no passphrase) in the lab's directory: generated with ssh-keygen,
// or a copy of the pair the user named in containers.sshKey. That one is read as the user the lab
// is for (its owner, or the account Ansible runs as), never as root: a config must not make root
// copy a file of root's (a host key) to where a user can read it. The user's own files are never
// touched. Like the upper layers, the lab's key outlives `run down`; `--purge` and `cleanup` remove it.
import { z } from "zod";
import { ownerFs, ownerSchema } from "../../src/lab/owner.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Journaled parameters. */
const sshKeyParamsSchema = z.object({
  path: z.string(),
  comment: z.string(),
  /** The pair to copy (containers.sshKey), read as `reader` (as root without one: root's own lab). */
  from: z.string().optional(),
  reader: ownerSchema.optional(),
});
export type SshKeyParams = z.infer<typeof sshKeyParamsSchema>;

/** The named pair, read as its reader; an error naming the key when it cannot be. */
async function given(ctx: TaskContext, p: SshKeyParams & { from: string }) {
  const fs = ownerFs(ctx, p.reader);
  const [key, pub] = await Promise.all([fs.read(p.from), fs.read(`${p.from}.pub`)]);
  if (key === undefined || pub === undefined)
    throw new Error(
      `containers.sshKey: ${p.from} and ${p.from}.pub cannot both be read${p.reader ? ` by ${p.reader.name}` : ""}`,
    );
  return { key, pub };
}

const named = (p: SshKeyParams): p is SshKeyParams & { from: string } => p.from !== undefined;

/** Generates the lab key pair, or copies the one the config names. */
export const labSshKey = defineTask({
  kind: "lab.sshkey",
  journaled: { params: sshKeyParamsSchema },
  // The lab's key, in every kept upper layer's authorized_keys: kept with them.
  kept: true,
  title: (p) => (named(p) ? `Copying ssh key ${p.from} to ${p.path}` : `Reading ssh key ${p.path}`),
  rollbackTitle: (p) => `Deleting ssh key ${p.path}`,
  async check(ctx, p) {
    const h = ctx.host;
    if (!(await h.fs.exists(p.path)) || !(await h.fs.exists(`${p.path}.pub`))) return false;
    if (!named(p)) return true;
    const want = await given(ctx as TaskContext, p);
    return (await h.fs.readFile(p.path)) === want.key && (await h.fs.readFile(`${p.path}.pub`)) === want.pub;
  },
  async run(ctx, p) {
    const h = ctx.host;
    await h.fs.mkdir(p.path.slice(0, p.path.lastIndexOf("/")) || "/", 0o700);
    if (named(p)) {
      const k = await given(ctx, p);
      await h.fs.writeFile(p.path, k.key, 0o600);
      await h.fs.writeFile(`${p.path}.pub`, k.pub, 0o644);
      return null;
    }
    if ((await h.fs.exists(p.path)) !== (await h.fs.exists(`${p.path}.pub`)))
      throw new Error(`${p.path} and ${p.path}.pub must both exist or both be absent`);
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
