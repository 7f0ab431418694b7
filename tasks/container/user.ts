// The login user and group (with password-less sudo, for Ansible's become) and the lab's public
// key in their authorized_keys and root's. Written through the merged root into the upper layer,
// which owns them (no rollback of its own).
import type { Host } from "../../src/host/host.js";
import { type AccountFiles, addAccount, gidOf, sudoersLine } from "../../src/lab/accounts.js";
import { readOr, writeIfChanged } from "../../src/lab/files.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

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
const SUDOERS = "etc/sudoers.d/aplspawn";

async function readAccounts(h: Host, root: string): Promise<AccountFiles> {
  const f = {} as AccountFiles;
  for (const k of ACCOUNT_FILES) f[k] = await readOr(h, `${root}/etc/${k}`);
  return f;
}

async function publicKey(ctx: TaskContext, p: UserParams): Promise<string> {
  const k = (await ctx.host.fs.readFile(p.publicKey)).trim();
  if (!/^ssh-\S+ \S+/.test(k)) throw new Error(`${p.publicKey} is not an SSH public key`);
  return k;
}

const hasKey = (text: string, key: string) => text.split("\n").some((l) => l.trim() === key);

/** Adds the user, sudo rights and authorized keys. */
export const containerUser = defineTask<UserParams, null>({
  kind: "container.user",
  title: (p) => `Adding user ${p.user} (group ${p.group}, sudo) and the lab's SSH key to container ${p.name}`,
  async check(ctx, p) {
    const h = ctx.host;
    const key = await publicKey(ctx, p).catch(() => undefined);
    if (!key) return false;
    const plan = addAccount(await readAccounts(h, p.merged), p.user, p.group);
    if (plan.changed.length > 0) return false;
    if ((await readOr(h, `${p.merged}/${SUDOERS}`)) !== sudoersLine(p.group)) return false;
    for (const home of [`${p.merged}${plan.home}`, `${p.merged}/root`])
      if (!hasKey(await readOr(h, `${home}/.ssh/authorized_keys`), key)) return false;
    return true;
  },
  async run(ctx, p) {
    const h = ctx.host;
    const key = await publicKey(ctx, p);
    const before = await readAccounts(h, p.merged);
    const plan = addAccount(before, p.user, p.group);
    for (const k of plan.changed) {
      const path = `${p.merged}/etc/${k}`;
      const secret = k === "shadow" || k === "gshadow";
      await h.fs.writeFile(path, plan.files[k], secret ? 0o640 : 0o644);
      // shadow files belong to group "shadow" on Debian (unix_chkpwd reads them through it).
      if (secret) await h.fs.chown(path, 0, gidOf(plan.files.group, "shadow") ?? 0);
    }
    await h.fs.mkdir(`${p.merged}/etc/sudoers.d`, 0o755);
    await writeIfChanged(h, `${p.merged}/${SUDOERS}`, sudoersLine(p.group), 0o440);
    const homes = [
      { dir: `${p.merged}${plan.home}`, uid: plan.uid, gid: plan.gid },
      { dir: `${p.merged}/root`, uid: 0, gid: 0 },
    ];
    for (const { dir, uid, gid } of homes) {
      const created = !(await h.fs.exists(dir));
      await h.fs.mkdir(`${dir}/.ssh`, 0o700);
      const ak = `${dir}/.ssh/authorized_keys`;
      const text = await readOr(h, ak);
      if (!hasKey(text, key))
        await h.fs.writeFile(ak, `${text}${text && !text.endsWith("\n") ? "\n" : ""}${key}\n`, 0o600);
      for (const path of created ? [dir, `${dir}/.ssh`, ak] : [`${dir}/.ssh`, ak])
        await h.fs.chown(path, uid, gid);
    }
    return null;
  },
});
