// The login user and group (with password-less sudo, for Ansible's become) and the lab's public
// key in their authorized_keys and root's. Written through the container's confined root into the
// upper layer, which owns them (no rollback of its own). The account lines come from the container
// and are checked before the host uses the home or ids they name.
import { posix } from "node:path";
import type { HostContext, RootFs } from "../../src/host/host.js";
import {
  type AccountFiles,
  type AccountPlan,
  accountProblem,
  addAccount,
  gidOf,
  sudoersLine,
} from "../../src/lab/accounts.js";
import { containerRoot, rootHolds, rootWriteIfChanged } from "../../src/lab/container-files.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
export interface UserParams {
  name: string;
  merged: string;
  user: string;
  group: string;
  /** The lab's public key file. */
  publicKey: string;
}

const ACCOUNT_FILES: (keyof AccountFiles)[] = ["passwd", "group", "shadow", "gshadow"];
const SUDOERS = "/etc/sudoers.d/aplspawn";

async function readAccounts(r: RootFs): Promise<AccountFiles> {
  const f = {} as AccountFiles;
  for (const k of ACCOUNT_FILES) f[k] = (await r.readFile(`/etc/${k}`)) ?? "";
  return f;
}

// The plan for the user, refused when the container's lines for it are not fit for the host to use.
async function plan(r: RootFs, p: UserParams): Promise<AccountPlan> {
  const plan = addAccount(await readAccounts(r), p.user, p.group);
  const problem = accountProblem(plan);
  if (problem)
    throw new Error(`container ${p.name}: the account ${p.user} in /etc/passwd is refused: ${problem}`);
  return plan;
}

async function publicKey(ctx: HostContext, p: UserParams): Promise<string> {
  const k = (await ctx.host.fs.readFile(p.publicKey)).trim();
  if (!/^ssh-\S+ \S+/.test(k)) throw new Error(`${p.publicKey} is not an SSH public key`);
  return k;
}

const hasKey = (text: string, key: string) => text.split("\n").some((l) => l.trim() === key);

// authorized_keys as it stands; a link there counts as empty (the write replaces it, never follows it).
const authorizedKeys = async (r: RootFs, ak: string) =>
  (await r.kind(ak)) === "link" ? "" : ((await r.readFile(ak)) ?? "");

const homes = (plan: AccountPlan) => [
  { dir: plan.home, uid: plan.uid, gid: plan.gid },
  { dir: "/root", uid: 0, gid: 0 },
];

/** Adds the user, sudo rights and authorized keys. */
export const containerUser = defineTask<UserParams, null>({
  kind: "container.user",
  title: (p) => `Adding user ${p.user} (group ${p.group}, sudo) and the lab's SSH key to container ${p.name}`,
  async check(ctx, p) {
    const key = await publicKey(ctx, p).catch(() => undefined);
    if (!key) return false;
    const r = await containerRoot(ctx.host, p.merged, p.name);
    const pl = await plan(r, p);
    if (pl.changed.length > 0) return false;
    if (!(await rootHolds(r, SUDOERS, sudoersLine(p.group)))) return false;
    for (const { dir } of homes(pl))
      if (!hasKey(await authorizedKeys(r, `${dir}/.ssh/authorized_keys`), key)) return false;
    return true;
  },
  async run(ctx, p) {
    const key = await publicKey(ctx, p);
    const r = await containerRoot(ctx.host, p.merged, p.name);
    const pl = await plan(r, p);
    for (const k of pl.changed) {
      const secret = k === "shadow" || k === "gshadow";
      // shadow files belong to group "shadow" on Debian (unix_chkpwd reads them through it).
      const gid = secret ? (gidOf(pl.files.group, "shadow") ?? 0) : 0;
      await r.writeFile(`/etc/${k}`, pl.files[k], { mode: secret ? 0o640 : 0o644, uid: 0, gid });
    }
    await r.mkdir("/etc/sudoers.d", { mode: 0o755 });
    await rootWriteIfChanged(r, SUDOERS, sudoersLine(p.group), { mode: 0o440 });
    for (const { dir, uid, gid } of homes(pl)) {
      // The home's parents are root's; the home and .ssh, when made here, the user's.
      await r.mkdir(posix.dirname(dir), { mode: 0o755 });
      const made = await r.mkdir(`${dir}/.ssh`, { mode: 0o700, uid, gid });
      if (!made.includes(`${dir}/.ssh`)) await r.chown(`${dir}/.ssh`, uid, gid);
      const ak = `${dir}/.ssh/authorized_keys`;
      const text = await authorizedKeys(r, ak);
      if (hasKey(text, key)) await r.chown(ak, uid, gid);
      else
        await r.writeFile(ak, `${text}${text && !text.endsWith("\n") ? "\n" : ""}${key}\n`, {
          mode: 0o600,
          uid,
          gid,
        });
    }
    return null;
  },
});
