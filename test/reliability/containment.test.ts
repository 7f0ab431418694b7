// Containment: whatever a container's root leaves in its upper layer (or an image ships), aplspawn's
// host-side writes, reads, mkdirs and chowns stay inside the container's root. Each attack is
// planted for real; the proof is a canary tree on the host that nothing touches, the lab's private
// key never in an upper layer, and a run that either repairs inside the root or fails with a clear
// error naming the container and the path, leaving nothing behind.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { parse, stringify } from "yaml";
import { makeSquashfs, writeFiles } from "../support/image.js";
import { assertNoResidue, type Lab, labTest, ok, statusField, withUpperOf } from "../support/lab.js";

/** Every entry under dir, not followed: type, mode, owner, size and content digest. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const n of (await readdir(d)).sort()) {
      const p = join(d, n);
      const s = await lstat(p);
      const what = s.isSymbolicLink()
        ? `-> ${await readlink(p)}`
        : s.isFile()
          ? createHash("sha256")
              .update(await readFile(p))
              .digest("hex")
          : "";
      out.push(`${p} ${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.size} ${what}`);
      if (s.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

/** A host tree the attacks point at: each target directory holds a file, some targets are files. */
async function makeCanary(dir: string): Promise<string> {
  for (const d of ["ssh", "network", "rootssh", "sudoers", "home-target", "img"]) {
    await mkdir(join(dir, d), { recursive: true, mode: 0o755 });
    await writeFile(join(dir, d, "keep"), `canary ${d}\n`);
  }
  await writeFile(join(dir, "hostname-file"), "canary hostname\n");
  return dir;
}

// One whole line of the key's base64 body that only this key has (grep matches within a line, and
// the first line is the same in every ed25519 key: the container's own host key has it too).
const keyLine = (key: string) => key.split("\n").filter((l) => l && !l.startsWith("-----"))[2] ?? "";

/** Files under dir whose content holds needle. */
async function filesHolding(dir: string, needle: string): Promise<string[]> {
  const r = await execa("grep", ["-rlF", "--", needle, dir], { reject: false });
  return String(r.stdout).split("\n").filter(Boolean);
}

interface Attack {
  title: string;
  /** Plant it in the container's upper layer (the lab is down) or, running, in its merged root. */
  plant(root: string, canary: string, lab: Lab): Promise<void>;
  /** Undo the plant so the next attack starts from a working container. */
  unplant(root: string): Promise<void>;
  /** refused: run up fails naming the path (a regexp over stderr); repaired: run up succeeds. */
  expect: { refused: RegExp } | "repaired";
}

const replaceWithLink = async (path: string, target: string) => {
  await rm(path, { recursive: true, force: true });
  await mkdir(dirname(path), { recursive: true });
  await symlink(target, path);
};
const removeIt = (rel: string) => (root: string) => rm(join(root, rel), { recursive: true, force: true });

// What a plant replaced, for its unplant to put back.
const saved: Record<string, string> = {};

const ATTACKS: Attack[] = [
  {
    title: "/etc/ssh is a link to a host directory",
    plant: (root, c) => replaceWithLink(join(root, "etc/ssh"), join(c, "ssh")),
    unplant: removeIt("etc/ssh"),
    expect: { refused: /container cnt-10: \/etc\/ssh is a symbolic link/ },
  },
  {
    title: "/etc/systemd/network is a relative link climbing out with ..",
    plant: (root, c) =>
      replaceWithLink(
        join(root, "etc/systemd/network"),
        `../../../../../../../../../..${join(c, "network")}`,
      ),
    unplant: removeIt("etc/systemd/network"),
    expect: { refused: /container cnt-10: \/etc\/systemd\/network is a symbolic link/ },
  },
  {
    title: "/root/.ssh is a link to a host directory",
    plant: (root, c) => replaceWithLink(join(root, "root/.ssh"), join(c, "rootssh")),
    unplant: removeIt("root/.ssh"),
    expect: { refused: /container cnt-10: \/root\/\.ssh is a symbolic link/ },
  },
  {
    title: "/etc/sudoers.d is a link to a host directory",
    plant: (root, c) => replaceWithLink(join(root, "etc/sudoers.d"), join(c, "sudoers")),
    unplant: removeIt("etc/sudoers.d"),
    expect: { refused: /container cnt-10: \/etc\/sudoers\.d is a symbolic link/ },
  },
  {
    title: "the user's home is a link to a host directory",
    plant: (root, c) => replaceWithLink(join(root, "home/test"), join(c, "home-target")),
    unplant: removeIt("home/test"),
    expect: { refused: /container cnt-10: \/home\/test is a symbolic link/ },
  },
  {
    title: "the user's authorized_keys is a link to the lab's private key",
    plant: (root, _c, lab) =>
      replaceWithLink(join(root, "home/test/.ssh/authorized_keys"), join(lab.workdir, "cnt", "id_ed25519")),
    unplant: async () => undefined,
    expect: "repaired",
  },
  {
    title: "/etc/hostname is a link to a host file",
    plant: (root, c) => replaceWithLink(join(root, "etc/hostname"), join(c, "hostname-file")),
    unplant: async () => undefined,
    expect: "repaired",
  },
  {
    title: "the user's home in /etc/passwd climbs out with ..",
    async plant(root, c) {
      const p = join(root, "etc/passwd");
      const text = await readFile(p, "utf8");
      await writeFile(
        p,
        text.replace(/^(test:x:\d+:\d+:[^:]*:)[^:]*:/m, `$1/../../../../../../../..${join(c, "home")}:`),
      );
    },
    async unplant(root) {
      const p = join(root, "etc/passwd");
      await writeFile(
        p,
        (await readFile(p, "utf8")).replace(/^(test:x:\d+:\d+:[^:]*:)[^:]*:/m, "$1/home/test:"),
      );
    },
    expect: {
      refused: /container cnt-10: the account test in \/etc\/passwd is refused: its home .* normalized/,
    },
  },
  {
    title: "/etc/hostname is a FIFO (a read would block for ever)",
    async plant(root) {
      await rm(join(root, "etc/hostname"), { force: true });
      await execa("mkfifo", [join(root, "etc/hostname")]);
    },
    unplant: removeIt("etc/hostname"),
    expect: { refused: /container cnt-10: \/etc\/hostname is a FIFO, socket or device/ },
  },
  {
    title: "/etc/group is a character device (/dev/zero: a read never ends)",
    async plant(root) {
      saved.group = await readFile(join(root, "etc/group"), "utf8");
      await rm(join(root, "etc/group"), { force: true });
      await execa("mknod", [join(root, "etc/group"), "c", "1", "5"]);
    },
    async unplant(root) {
      await rm(join(root, "etc/group"), { force: true });
      await writeFile(join(root, "etc/group"), saved.group ?? "");
    },
    expect: { refused: /container cnt-10: \/etc\/group is a FIFO, socket or device/ },
  },
  {
    title: "/etc/shadow is 2 MiB",
    async plant(root) {
      const p = join(root, "etc/shadow");
      await writeFile(p, `${await readFile(p, "utf8")}${"#".repeat(2 * 1024 * 1024)}\n`);
    },
    async unplant(root) {
      const p = join(root, "etc/shadow");
      await writeFile(p, (await readFile(p, "utf8")).replace(/#+\n$/, ""));
    },
    expect: { refused: /container cnt-10: \/etc\/shadow is \d+ bytes, more than/ },
  },
];

labTest(
  "a container's root plants links, a .. home, a FIFO, a device and a huge file: run up never leaves the root",
  { name: "cnt", subnet: 41, containers: { count: 1 }, inventory: { ping: false } },
  async (lab) => {
    const canary = await makeCanary(join(lab.dir, "canary"));
    const before = await tree(canary);
    const merged = join(lab.machinesDir, "cnt-10");
    ok(await lab.cli(["run", "up"]), "first run up");
    const key = keyLine(await readFile(join(lab.workdir, "cnt", "id_ed25519"), "utf8"));
    assert.ok(key.length > 40, "the lab's private key was read");

    // Planted in a running container's root (mounted in the lab's namespace): run up over the
    // running lab checks through it.
    ok(await lab.ns.run("rm", ["-rf", "--", join(merged, "etc/ssh")]), "rm /etc/ssh");
    ok(await lab.ns.run("ln", ["-s", "--", join(canary, "ssh"), join(merged, "etc/ssh")]), "ln -s /etc/ssh");
    const over = await lab.cli(["run", "up"]);
    assert.equal(
      over.exitCode,
      1,
      `run up over a running lab with /etc/ssh a link:\n${over.stdout}${over.stderr}`,
    );
    assert.match(over.stderr, /container cnt-10: \/etc\/ssh is a symbolic link/);
    assert.deepEqual(await tree(canary), before, "the host canary changed (run up over the running lab)");
    ok(await lab.cli(["run", "down"]), "run down");
    // While the lab is down its upper layer is in the container's own file system, not mounted:
    // the test mounts that to plant and to look, as a container's root would have left it.
    const inUpper = (fn: (upper: string) => Promise<void>) => withUpperOf(lab, "cnt-10", fn);
    await inUpper((upper) => rm(join(upper, "etc/ssh"), { recursive: true, force: true }));

    for (const a of ATTACKS) {
      await inUpper((upper) => a.plant(upper, canary, lab));
      // Bounded: a read that blocks on a FIFO would otherwise hold the lab for ever.
      const up = await lab.ns.cli(["-c", lab.config, "run", "up"], { cwd: lab.dir, timeoutMs: 180_000 });
      assert.deepEqual(await tree(canary), before, `${a.title}: the host canary changed`);
      if (a.expect === "repaired") {
        ok(up, `${a.title}: run up`);
      } else {
        assert.equal(up.exitCode, 1, `${a.title}: run up should fail:\n${up.stdout}${up.stderr}`);
        assert.match(up.stderr, a.expect.refused, `${a.title}: the error names the container and the path`);
      }
      ok(await lab.cli(["run", "down"]), `${a.title}: run down`);
      await assertNoResidue(lab, a.title);
      await inUpper(async (upper) => {
        assert.deepEqual(
          await filesHolding(upper, key),
          [],
          `${a.title}: the lab's private key is in the upper layer`,
        );
        await a.unplant(upper);
      });
    }
    // Repaired or refused, the container still comes up once the plants are gone.
    ok(await lab.cli(["run", "up"]), "run up after the attacks");
    ok(await lab.cli(["run", "down"]), "final run down");
    await assertNoResidue(lab, "after the attacks");
    assert.deepEqual(await tree(canary), before, "the host canary changed");
  },
);

labTest(
  "links shipped inside an image (a squashfs) never lead aplspawn out of the container's root",
  { name: "cni", subnet: 42 },
  async (lab) => {
    const canary = await makeCanary(join(lab.dir, "canary"));
    const before = await tree(canary);
    const images: [string, string, string, RegExp][] = [
      ["ssh", "etc/ssh", join(canary, "img"), /container cni-10: \/etc\/ssh is a symbolic link/],
      [
        "net",
        "etc/systemd/network",
        `../../../../../../../..${join(canary, "img")}`,
        /container cni-10: \/etc\/systemd\/network is a symbolic link/,
      ],
      ["root", "root", join(canary, "img"), /container cni-10: \/root is a symbolic link/],
    ];
    for (const [name, rel, target, refused] of images) {
      const t = join(lab.dir, `tree-${name}`);
      await writeFiles(t, {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
        "etc/group": "root:x:0:\nshadow:x:42:\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\n",
        "usr/lib/systemd/system/systemd-networkd.service": "[Unit]\n",
        "usr/lib/systemd/system/systemd-networkd.socket": "[Unit]\n",
      });
      await mkdir(dirname(join(t, rel)), { recursive: true });
      await symlink(target, join(t, rel));
      const image = await makeSquashfs(t, join(lab.dir, `hostile-${name}.squashfs`));
      await lab.writeConfig({
        image: { url: `file://${image}` },
        containers: { count: 1 },
        inventory: { ping: false },
      });
      const up = await lab.cli(["run", "up"]);
      assert.deepEqual(await tree(canary), before, `image with ${rel} a link: the host canary changed`);
      assert.equal(up.exitCode, 1, `image with ${rel} a link: run up should fail:\n${up.stdout}${up.stderr}`);
      assert.match(up.stderr, refused);
      ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
      await assertNoResidue(lab, `image with ${rel} a link`);
    }
  },
);

labTest(
  "other local users: machinesDir is root's alone, a container's setuid file cannot be run through it, an open machinesDir or a replaceable workdir is refused",
  { name: "cnm", subnet: 43, containers: { count: 1 }, inventory: { ping: false } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const md = await stat(lab.machinesDir);
    assert.equal(md.uid, 0);
    assert.equal(md.mode & 0o7777, 0o700, "machinesDir is made 0700");
    // A setuid copy of id inside the container, tried by nobody through the host's paths.
    const merged = join(lab.machinesDir, "cnm-10");
    ok(await lab.ns.run("cp", ["/usr/bin/id", join(merged, "usr/local/bin/suid-id")]), "cp id");
    ok(await lab.ns.run("chmod", ["4755", join(merged, "usr/local/bin/suid-id")]), "chmod 4755");
    const lower = join(lab.workdir, "cnm", "lower");
    for (const bin of [join(merged, "usr/local/bin/suid-id"), join(lower, "usr/bin/su")]) {
      // Through sh: setpriv's own exec still has root's capabilities for the path lookup.
      const r = await lab.ns.run("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "/bin/sh",
        "-c",
        'exec "$0" -u',
        bin,
      ]);
      assert.notEqual(r.exitCode, 0, `nobody ran ${bin}: ${r.stdout}`);
      assert.match(r.stderr, /Permission denied/, `nobody could not reach ${bin}`);
    }
    ok(await lab.cli(["run", "down"]), "run down");

    await chmod(lab.machinesDir, 0o755);
    const open = await lab.cli(["run", "up"]);
    assert.equal(open.exitCode, 1, open.stdout + open.stderr);
    assert.match(
      open.stderr,
      /containers\.machinesDir .*other users can reach into it \(mode 755\).*chmod 700/,
    );
    await chmod(lab.machinesDir, 0o700);

    // A workdir below a directory others can write to, or one another user owns.
    const config = parse(await readFile(lab.config, "utf8")) as Record<string, unknown>;
    for (const [mode, owner, why] of [
      [0o777, 0, /is writable by everyone \(mode 777\)/],
      [0o755, 65534, /is owned by uid 65534, not root/],
    ] as const) {
      const parent = join(lab.dir, `shared-${mode.toString(8)}-${owner}`);
      await mkdir(parent);
      await chmod(parent, mode);
      await chown(parent, owner, owner);
      const file = join(lab.dir, `open-${owner}.yaml`);
      await writeFile(file, stringify({ ...config, workdir: join(parent, "work") }));
      const r = await lab.ns.cli(["-c", file, "run", "up"], { cwd: lab.dir });
      assert.equal(r.exitCode, 1, r.stdout + r.stderr);
      assert.match(r.stderr, why);
      assert.deepEqual(await readdir(parent), [], "nothing was made in the replaceable workdir");
    }
    await assertNoResidue(lab, "after the refusals");
  },
);

labTest(
  "exec gets no more than the container's init: its bounding set, a cgroup of the container's, its PID namespace, no_new_privs and a clean environment",
  { name: "cnx", subnet: 44, containers: { count: 1 }, inventory: { ping: false } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const leader = Number(ok(await lab.cli(["pids"]), "pids").stdout.trim());
    const init = await readFile(`/proc/${leader}/status`, "utf8");
    const exec = (...cmd: string[]) =>
      lab.cli(["exec", "cnx-10", "--", ...cmd], {
        APLSPAWN_LEAK: "host-secret",
        PATH: process.env.PATH ?? "",
      });
    const own = ok(await exec("cat", "/proc/self/status"), "exec cat status").stdout;
    assert.equal(
      statusField(own, "CapBnd"),
      statusField(init, "CapBnd"),
      "bounding set as the container init's",
    );
    assert.notEqual(statusField(own, "CapBnd"), "000001ffffffffff", "not the host's full set");
    assert.equal(statusField(own, "CapInh"), "0000000000000000");
    assert.equal(statusField(own, "CapAmb"), "0000000000000000");
    assert.equal(statusField(own, "NoNewPrivs"), "1");
    // The container's systemd started it: a service of its own, inside the container's cgroup
    // namespace (a path outside it would read "/..").
    const cg = ok(await exec("cat", "/proc/self/cgroup"), "cgroups").stdout;
    assert.match(cg, /^0::\/system\.slice\/aplspawn-exec-[0-9a-f]+\.service$/m, cg);
    assert.doesNotMatch(cg, /:\/\.\./, "a cgroup outside the container's");
    const pidNs = ok(await exec("readlink", "/proc/self/ns/pid"), "pid ns").stdout.trim();
    assert.equal(pidNs, await readlink(`/proc/${leader}/ns/pid`), "the init's PID namespace");
    const env = ok(await exec("cat", "/proc/self/environ"), "environ")
      .stdout.split("\0")
      .filter(Boolean)
      .map((l) => l.split("=")[0] ?? "")
      // What systemd gives every service.
      .filter((n) => !/^(INVOCATION_ID|SYSTEMD_EXEC_PID|LANG|LC_\w+)$/.test(n))
      .sort();
    // Off a terminal there is no TERM (with a terminal, the caller's goes with the pty).
    assert.deepEqual(env, ["HOME", "LOGNAME", "PATH", "USER"], "a clean environment");
    ok(await lab.cli(["run", "down"]), "run down");
  },
);

labTest(
  "a process inside a container that names itself systemd-nspawn is never taken for one: up, pids, status and exec ignore it",
  { name: "cnf", subnet: 45, containers: { count: 2 }, inventory: { ping: false } },
  async (lab) => {
    ok(await lab.cli(["run", "up"]), "run up");
    ok(await lab.cli(["run", "stop", "--only", "cnf-11"]), "stop cnf-11");
    // pids exits 1 while a container is stopped; it still lists the running ones.
    const leader = Number((await lab.cli(["pids"])).stdout.trim());
    // In cnf-10: a copy of dash named systemd-nspawn, its argv that of cnf-11's nspawn, with a child.
    const merged11 = join(lab.machinesDir, "cnf-11");
    ok(
      await lab.ns.run("nsenter", [
        `--target=${leader}`,
        "--all",
        "--root",
        "--wd",
        "--",
        "sh",
        "-c",
        `cp /bin/dash /tmp/systemd-nspawn && (setsid /tmp/systemd-nspawn -c 'sleep 1000; :' --machine=cnf-11 --directory=${merged11} >/dev/null 2>&1 &)`,
      ]),
      "plant the fake",
    );
    const fake = (
      await execa("pgrep", ["-f", "--", `--machine=cnf-11 --directory=${merged11}`], { reject: false })
    ).stdout
      .split("\n")
      .filter(Boolean);
    assert.ok(fake.length > 0, "the fake runs (seen by name from the host)");
    const pids = (await lab.cli(["pids"])).stdout.trim().split("\n");
    assert.deepEqual(pids, [String(leader)], "pids lists only cnf-10's real leader");
    const st = JSON.parse((await lab.cli(["--json", "status"])).stdout) as {
      checks: { target: string; name: string; ok: boolean }[];
    };
    assert.equal(
      st.checks.find((c) => c.target === "cnf-11" && c.name.startsWith("Checking nspawn process"))?.ok,
      false,
    );
    const ex = await lab.cli(["exec", "cnf-11", "--", "hostname"]);
    assert.equal(ex.exitCode, 1, `exec entered the fake: ${ex.stdout}`);
    assert.match(ex.stderr, /container cnf-11 is not running/);
    // run up starts the real cnf-11 (the fake does not make it "already running").
    ok(await lab.cli(["run", "up"]), "run up");
    assert.equal(ok(await lab.cli(["exec", "cnf-11", "--", "hostname"]), "exec").stdout.trim(), "cnf-11");
    for (const p of fake) await execa("kill", ["-9", p], { reject: false });
    ok(await lab.cli(["run", "down"]), "run down");
  },
);
