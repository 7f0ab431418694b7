// A journal is data, and a crafted one is the attack: entries edited to name paths outside the
// lab's directories (a tree, a key pair, a mount, a path through a link out of the lab, a user's
// file the owner's rollback would remove as them) must make
// `run down --purge` refuse and report, touching nothing there, while the lab's own entry in the
// same journal is still undone.
import assert from "node:assert/strict";
import { chown, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { netLabTest, ok } from "../support/lab.js";

netLabTest(
  "a journal edited to name paths outside the lab: run down refuses each, touches none, and still undoes the lab's own entry",
  { name: "jpx", subnet: 82 },
  async (lab) => {
    const labDir = join(lab.workdir, lab.name);
    const v = join(lab.dir, "victims");
    // What lies outside the lab's directories (workdir/jpx, machinesDir/<container>, /run's).
    await mkdir(join(v, "tree", "etc"), { recursive: true });
    await writeFile(join(v, "tree", "etc", "passwd"), "root:x:0:0::/root:/bin/sh\n");
    await writeFile(join(v, "key"), "private\n");
    await writeFile(join(v, "key.pub"), "public\n");
    await mkdir(join(v, "linked", "upper"), { recursive: true });
    await writeFile(join(v, "linked", "upper", "data"), "kept\n");
    for (const d of ["lo", "up", "wk", "mnt"]) await mkdir(join(v, d));
    // A user's home: their file is what a crafted owner's entry aims at (removed as them).
    const home = join(v, "home");
    await mkdir(home, { mode: 0o700 });
    await writeFile(join(home, "thesis.txt"), "years of work\n");
    await chown(home, 61234, 61234);
    await chown(join(home, "thesis.txt"), 61234, 61234);
    await writeFile(join(v, "lo", "file"), "lower\n");
    // Someone else's overlay mount (another lab's container root, say).
    const overlay = `lowerdir=${join(v, "lo")},upperdir=${join(v, "up")},workdir=${join(v, "wk")}`;
    ok(await lab.ns.run("mount", ["-t", "overlay", "overlay", "-o", overlay, join(v, "mnt")]), "mount");
    try {
      // The lab's own directory, with a link in it leading out of the lab.
      await mkdir(join(labDir, "containers", "jpx-2", "upper"), { recursive: true, mode: 0o700 });
      await writeFile(join(labDir, "containers", "jpx-2", "upper", "file"), "the lab's\n");
      await symlink(join(v, "linked"), join(labDir, "containers", "jpx-9"));
      const entry = (seq: number, id: string, kind: string, params: unknown, scope?: string) => [
        {
          op: "begin",
          entry: {
            seq,
            id,
            kind,
            ...(scope ? { scope } : {}),
            runId: "r1",
            state: "running",
            params,
            startedAt: "2026-01-01T00:00:00Z",
          },
        },
        { op: "done", seq, result: null },
      ];
      const upper = (name: string, u: string) => ({
        name,
        dir: join(labDir, "containers", name),
        upper: u,
      });
      const records = [
        { format: "aplspawn-journal", version: 2, lab: lab.name },
        // The lab's own: undone.
        ...entry(
          1,
          "container.upper[jpx-2]",
          "container.upper",
          upper("jpx-2", join(labDir, "containers", "jpx-2", "upper")),
          "jpx-2",
        ),
        // Crafted: a whole tree, a key pair, another's mount, a path through a link.
        ...entry(2, "container.upper[jpx-1]", "container.upper", upper("jpx-1", join(v, "tree")), "jpx-1"),
        ...entry(3, "lab.sshkey", "lab.sshkey", { path: join(v, "key"), comment: "x" }),
        ...entry(
          4,
          "container.overlay[jpx-3]",
          "container.overlay",
          {
            name: "jpx-3",
            lower: join(v, "lo"),
            upper: join(v, "up"),
            work: join(v, "wk"),
            merged: join(v, "mnt"),
          },
          "jpx-3",
        ),
        ...entry(6, "lab.owner-files", "lab.owner-files", {
          owner: { name: "apltest", uid: 61234, gid: 61234, home },
          dir: join(home, "state"),
          controlPathDir: join(home, "state", "cp"),
          copies: [{ from: "/dev/null", to: join(home, "thesis.txt"), mode: 0o600 }],
        }),
        ...entry(
          5,
          "container.upper[jpx-9]",
          "container.upper",
          upper("jpx-9", join(labDir, "containers", "jpx-9", "upper")),
          "jpx-9",
        ),
      ];
      await writeFile(join(labDir, "journal.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""), {
        mode: 0o600,
      });

      const r = await lab.cli(["run", "down", "--purge"]);
      const out = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.exitCode, 1, `run down fails, saying what it refused:\n${out}`);
      for (const p of [
        join(v, "tree"),
        join(v, "key"),
        join(v, "mnt"),
        join(labDir, "containers", "jpx-9", "upper"),
        join(home, "thesis.txt"),
      ])
        assert.ok(
          out.includes(`refusing to remove ${p}`) || out.includes(`refusing to unmount ${p}`),
          `${p} was refused and named:\n${out}`,
        );
      // Nothing outside was touched.
      assert.equal(await readFile(join(v, "tree", "etc", "passwd"), "utf8"), "root:x:0:0::/root:/bin/sh\n");
      assert.equal(await readFile(join(v, "key"), "utf8"), "private\n");
      assert.equal(await readFile(join(v, "key.pub"), "utf8"), "public\n");
      assert.equal(await readFile(join(v, "linked", "upper", "data"), "utf8"), "kept\n");
      assert.equal(await readFile(join(home, "thesis.txt"), "utf8"), "years of work\n");
      const mounts = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET"])).stdout.split("\n");
      assert.ok(mounts.includes(join(v, "mnt")), "the other overlay is still mounted");
      // The lab's own entry was undone; the refused ones stay in the journal.
      await assert.rejects(
        readFile(join(labDir, "containers", "jpx-2", "upper", "file")),
        "the lab's upper was removed",
      );
      const left = (await readFile(join(labDir, "journal.jsonl"), "utf8")).split("\n").filter(Boolean);
      assert.ok(
        !left.some((l) => l.includes('"op":"remove","seq":2')),
        "a refused entry stays in the journal",
      );
      assert.ok(
        left.some((l) => l.includes('"op":"remove","seq":1')),
        "the lab's entry left the journal",
      );
    } finally {
      await lab.ns.run("umount", [join(v, "mnt")]);
    }
  },
);
