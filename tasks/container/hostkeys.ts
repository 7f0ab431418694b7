// The container's SSH host key: generated on the host with ssh-keygen, written into the container
// with an sshd drop-in that serves only it, and its public half pinned in the lab's known_hosts,
// so the very first connection is verified. Like the upper layer, it outlives `run down`.
import { z } from "zod";
import { readOr, rmdirIfEmpty } from "../../src/host/files.js";
import type { HostContext } from "../../src/host/host.js";
import { containerRoot, rootHolds, rootWriteIfChanged } from "../../src/lab/container-files.js";
import { knownHostsLine, knownHostsTurn, withKnownHost } from "../../src/lab/ssh.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
const hostKeysParamsSchema = z.object({
  name: z.string(),
  ip: z.string(),
  /** The container's lab dir, where the key pair is kept on the host. */
  dir: z.string(),
  merged: z.string(),
  knownHosts: z.string(),
});
export type HostKeysParams = z.infer<typeof hostKeysParamsSchema>;
/** Whether the key pair was there before run (journaled: rollback then keeps it). */
const hostKeysIntentSchema = z.object({ hadKey: z.boolean() });

const KEY = "ssh_host_ed25519_key";
const DROPIN = "/etc/ssh/sshd_config.d/aplspawn.conf";
/** The sshd drop-in: serve only our key (the image's own keys are the same in every copy of it). */
const SSHD_DROPIN = `# Written by aplspawn: serve only this container's own host key, pinned in the lab's known_hosts.\nHostKey /etc/ssh/${KEY}\n`;

async function wanted(ctx: HostContext, p: HostKeysParams) {
  const priv = await readOr(ctx.host, `${p.dir}/${KEY}`, "");
  const pub = await readOr(ctx.host, `${p.dir}/${KEY}.pub`, "");
  return { priv, pub, line: pub ? knownHostsLine(p.name, p.ip, pub) : "" };
}

/** Generates, installs and pins the container's host key. */
export const containerHostKeys = defineTask({
  kind: "container.hostkeys",
  journaled: { params: hostKeysParamsSchema, intent: hostKeysIntentSchema },
  // Pinned in known_hosts and served by the kept upper layer: kept with it.
  kept: true,
  title: (p) => `Generating SSH host key for container ${p.name}, pinned in known_hosts`,
  rollbackTitle: (p) => `Deleting SSH host key of container ${p.name} and its known_hosts line`,
  async check(ctx, p) {
    const h = ctx.host;
    const w = await wanted(ctx, p);
    if (!w.priv || !w.pub) return false;
    const r = await containerRoot(h, p.merged, p.name);
    return (
      (await rootHolds(r, `/etc/ssh/${KEY}`, w.priv)) &&
      (await rootHolds(r, `/etc/ssh/${KEY}.pub`, w.pub)) &&
      (await rootHolds(r, DROPIN, SSHD_DROPIN)) &&
      (await readOr(h, p.knownHosts)).split("\n").includes(w.line)
    );
  },
  async prepare(ctx, p) {
    return { hadKey: await ctx.host.fs.exists(`${p.dir}/${KEY}`) };
  },
  async run(ctx, p) {
    const h = ctx.host;
    let w = await wanted(ctx, p);
    if (!w.priv || !w.pub) {
      await h.fs.rm(`${p.dir}/${KEY}`);
      await h.fs.rm(`${p.dir}/${KEY}.pub`);
      await h.exec(
        "ssh-keygen",
        ["-q", "-t", "ed25519", "-N", "", "-C", `root@${p.name}`, "-f", `${p.dir}/${KEY}`],
        {
          signal: ctx.signal,
        },
      );
      w = await wanted(ctx, p);
    }
    const r = await containerRoot(h, p.merged, p.name);
    await r.mkdir("/etc/ssh/sshd_config.d", { mode: 0o755 });
    await rootWriteIfChanged(r, `/etc/ssh/${KEY}`, w.priv, { mode: 0o600 });
    await rootWriteIfChanged(r, `/etc/ssh/${KEY}.pub`, w.pub, { mode: 0o644 });
    await rootWriteIfChanged(r, DROPIN, SSHD_DROPIN, { mode: 0o644 });
    await knownHostsTurn(ctx)(async () => {
      const text = await readOr(h, p.knownHosts);
      const next = withKnownHost(text, p.name, w.line);
      if (next !== text) await h.fs.writeFile(p.knownHosts, next, 0o644);
    });
    return null;
  },
  async rollback(ctx, { params: p, intent }) {
    const h = ctx.host;
    await knownHostsTurn(ctx)(async () => {
      const text = await readOr(h, p.knownHosts);
      const next = withKnownHost(text, p.name, undefined);
      if (next === text) return;
      if (next === "") await h.fs.rm(p.knownHosts);
      else await h.fs.writeFile(p.knownHosts, next, 0o644);
    });
    if (!intent?.hadKey) {
      await h.fs.rm(`${p.dir}/${KEY}`);
      await h.fs.rm(`${p.dir}/${KEY}.pub`);
    }
    await rmdirIfEmpty(h, p.dir);
    await rmdirIfEmpty(h, p.dir.slice(0, p.dir.lastIndexOf("/")));
  },
});
