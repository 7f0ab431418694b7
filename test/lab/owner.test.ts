// The lab without root after `sudo aplspawn run up`: the user who ran it through sudo gets their own
// copies of the lab key and known_hosts, and the inventory is theirs, all written as them; the
// README's "Then:" block works as that user; `run down` takes their copies away. Root never writes
// in the user's home: a home whose state directory is a link to a directory of root's fails the
// run and nothing appears there.
import assert from "node:assert/strict";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../config/load.js";
import { ownerFiles } from "../../config/paths.js";
import { assertNoResidue, labTest, ok } from "../support/lab.js";

const UID = 61234;
const USER = "apltest";

labTest(
  "sudo run up gives SUDO_USER the lab: the README's Then: block works as that user; down takes it back; never written as root",
  { name: "own", subnet: 52 },
  async (lab) => {
    const { ns } = lab;
    // The user exists only in the test's mount namespace: a passwd of its own bound over the host's.
    const home = await mkdtemp(join(tmpdir(), "aplspawn-owner-home-"));
    const victim = await mkdtemp(join(tmpdir(), "aplspawn-owner-victim-"));
    try {
      await chown(home, UID, UID);
      await chmod(home, 0o700);
      const passwd = await lab.file(
        "passwd",
        `${await readFile("/etc/passwd", "utf8")}${USER}:x:${UID}:${UID}::${home}:/bin/sh\n`,
      );
      ok(await ns.run("mount", ["--bind", passwd, "/etc/passwd"]), "bind passwd");
      // The config in the user's home, as a user keeps it; the inventory goes beside it.
      await lab.writeConfig({ containers: { count: 2 }, inventory: { file: "inventory.txt" } });
      const config = join(home, "aplspawn.yaml");
      await writeFile(config, await readFile(lab.config, "utf8"));
      await chown(config, UID, UID);
      const c = parseConfig(await readFile(config, "utf8"), config);
      const f = ownerFiles(c, home);
      const sudo = { SUDO_USER: USER, SUDO_UID: String(UID), SUDO_GID: String(UID) };
      const asRoot = (args: string[]) => ns.cli(["-c", config, ...args], { cwd: home, env: sudo });
      // The CLI of the checkout, which may sit where the user cannot reach (a clone in /root).
      const { cli: CLI, release } = await ns.userCli(UID);
      const asUser = (cmd: string, args: string[]) =>
        ns.run(
          "setpriv",
          [
            "--reuid",
            String(UID),
            "--regid",
            String(UID),
            "--clear-groups",
            "--",
            "env",
            `HOME=${home}`,
            cmd,
            ...args,
          ],
          { cwd: home },
        );

      // The attack: the user's state directory is a link to a directory of root's.
      await mkdir(join(home, ".local"), { recursive: true });
      await chown(join(home, ".local"), UID, UID);
      await symlink(victim, join(home, ".local", "state"));
      const refused = await asRoot(["run", "up"]);
      assert.equal(refused.exitCode, 1, `${refused.stdout}\n${refused.stderr}`);
      assert.deepEqual(await readdir(victim), [], "root wrote through the user's link");
      await rm(join(home, ".local", "state"));

      const up = ok(await asRoot(["run", "up"]), "sudo run up");
      assert.match(up.stdout, new RegExp(`Checking the lab with ansible .* as ${USER}`));
      for (const [file, mode] of [
        [f.key, 0o600],
        [f.knownHosts, 0o644],
        [join(home, "inventory.txt"), 0o644],
      ] as const) {
        const st = await stat(file);
        assert.equal(st.uid, UID, `${file} is not the user's`);
        assert.equal(st.mode & 0o777, mode, `${file} mode`);
      }
      const inventory = await readFile(join(home, "inventory.txt"), "utf8");
      assert.ok(inventory.includes(f.key) && inventory.includes(f.controlPathDir));

      // README's "Then:" block, as the user.
      ok(
        await asUser("ansible", ["-i", "inventory.txt", "-m", "ping", c.inventory.group]),
        "ansible as the user",
      );
      const status = ok(await asUser(process.execPath, [CLI, "status"]), "status as the user");
      assert.match(status.stdout, /not root: checking ssh logins only/);
      assert.match(status.stdout, /all 2 checks passed/);
      ok(await asUser(process.execPath, [CLI, "ssh", "own-10", "--", "true"]), "ssh as the user");
      // A reset gives own-10 a new host key: the user's copy of known_hosts follows.
      ok(await asRoot(["run", "reset", "--only", "own-10"]), "sudo run reset");
      ok(
        await asUser(process.execPath, [CLI, "ssh", "own-10", "--", "true"]),
        "ssh as the user after a reset",
      );

      ok(await asRoot(["run", "down"]), "sudo run down");
      for (const gone of [f.dir, join(home, "inventory.txt")])
        assert.equal(await stat(gone).catch(() => undefined), undefined, `${gone} is left`);
      const noCopy = await asUser(process.execPath, [CLI, "ssh", "own-10", "--", "true"]);
      assert.match(noCopy.stderr, /you have no copy of the lab's key/);
      ok(await ns.run("umount", ["/etc/passwd"]), "unbind passwd");
      await release();
      await assertNoResidue(lab, "after down");
    } finally {
      await ns.run("umount", ["/etc/passwd"]);
      await rm(home, { recursive: true, force: true });
      await rm(victim, { recursive: true, force: true });
    }
  },
);
