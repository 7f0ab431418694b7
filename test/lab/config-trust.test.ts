// A config is root's code: one another user could have written is refused, and what a config names
// never aims root at the host (a key of root's copied to a user, an inventory written anywhere, a
// playbook Ansible's account cannot read). Each refusal is a usage error (exit 2) before anything
// is made.
import assert from "node:assert/strict";
import { chmod, chown, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { netLabTest, ok, sameSnapshot, settled } from "../support/lab.js";
import type { NsSnapshot } from "../support/ns.js";

const UID = 61235;
const USER = "apltrust";

netLabTest(
  "configs that could aim root at the host are refused with exit 2, nothing made",
  { name: "ctr", subnet: 58 },
  async (lab) => {
    const { ns } = lab;
    const base = await readFile(lab.config, "utf8");
    const refused = async (
      what: string,
      args: string[],
      why: RegExp,
      o: { cwd?: string; env?: Record<string, string>; before?: NsSnapshot } = {},
    ) => {
      const r = await ns.cli(args, { cwd: o.cwd ?? lab.dir, ...(o.env ? { env: o.env } : {}) });
      assert.equal(r.exitCode, 2, `${what}: exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, why, what);
      assert.deepEqual(
        await readdir(lab.workdir).catch(() => []),
        [],
        `${what}: the lab's directory was made`,
      );
      sameSnapshot(settled(await ns.snapshot()), o.before ?? settled(lab.before), what);
    };

    // A config another user could have changed: world-writable, someone else's, in a directory
    // others may write.
    await chmod(lab.config, 0o666);
    await refused(
      "a world-writable config",
      ["-c", lab.config, "run", "up"],
      /can be written by others \(mode 666\)/,
    );
    await chmod(lab.config, 0o644);
    await chown(lab.config, UID, UID);
    await refused(
      "another user's config",
      ["-c", lab.config, "run", "netup"],
      /belongs to uid 61235, neither root/,
    );
    await refused("another user's config, status", ["-c", lab.config, "status"], /belongs to uid 61235/);
    await chown(lab.config, 0, 0);
    const open = join(lab.dir, "open");
    await mkdir(open);
    await chmod(open, 0o777);
    const inOpen = join(open, "aplspawn.yaml");
    await writeFile(inOpen, base);
    await refused(
      "a config in a directory others may write",
      ["-c", inOpen, "run", "up"],
      /open, which holds it, can be written by others \(mode 777/,
    );

    // Root's lab (no owner): its inventory only under the config's own directory.
    const away = join(lab.dir, "away.yaml");
    const elsewhere = join(tmpdir(), `aplspawn-elsewhere-${process.pid}`, "inventory.txt");
    const c = parse(base) as { inventory: Record<string, unknown>; containers: Record<string, unknown> };
    await writeFile(away, stringify({ ...c, inventory: { ...c.inventory, file: elsewhere } }));
    await refused(
      "an inventory outside the config's directory",
      ["-c", away, "run", "up"],
      /inventory\.file: .*aplspawn-elsewhere-\d+\/inventory\.txt is outside/,
    );

    // A playbook Ansible's unprivileged account cannot read.
    const closed = join(lab.dir, "closed");
    await mkdir(closed, { mode: 0o700 });
    await writeFile(join(closed, "site.yml"), "- hosts: all\n  tasks: []\n");
    const pb = await lab.file(
      "pb.yaml",
      stringify({ ...c, provision: { playbook: join(closed, "site.yml") } }),
    );
    await refused(
      "a playbook Ansible's account cannot read",
      ["-c", pb, "run", "up"],
      /provision\.playbook: .*site\.yml cannot be read by aplspawn/,
    );

    // Run for a user through sudo: the key the config names is read as them. A key of root's
    // (a host key) is refused, never copied to them.
    const home = join(lab.dir, "home");
    await mkdir(home);
    await chown(home, UID, UID);
    const passwd = await lab.file(
      "passwd",
      `${await readFile("/etc/passwd", "utf8")}${USER}:x:${UID}:${UID}::${home}:/bin/sh\n`,
    );
    ok(await ns.run("mount", ["--bind", passwd, "/etc/passwd"]), "bind passwd");
    const before = settled(await ns.snapshot());
    try {
      const rootKey = join(closed, "host_key");
      ok(await ns.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", rootKey]), "a key of root's");
      const owned = join(home, "aplspawn.yaml");
      await writeFile(
        owned,
        stringify({
          ...c,
          inventory: { ...c.inventory, file: "inventory.txt" },
          containers: { ...c.containers, sshKey: rootKey },
        }),
      );
      await chown(owned, UID, UID);
      const sudo = { SUDO_USER: USER, SUDO_UID: String(UID), SUDO_GID: String(UID) };
      await refused(
        "a key of root's named by a user's config",
        ["-c", owned, "run", "up"],
        /containers\.sshKey: .*host_key cannot be read by apltrust/,
        { cwd: home, env: sudo, before },
      );
      assert.deepEqual(await readdir(home), ["aplspawn.yaml"], "something was written in the user's home");
    } finally {
      await ns.run("umount", ["/etc/passwd"]);
    }
  },
);
