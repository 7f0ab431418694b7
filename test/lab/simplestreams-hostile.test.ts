// An image server's squashfs is hostile input: its /etc a link to a host directory (configureTree
// writes under /etc) and a block device node of the host's disk. Nothing is written through the
// link on the host, and a layer made of it holds no device node.
import assert from "node:assert/strict";
import { mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { simplestreamsArch } from "../../src/image/simplestreams.js";
import { sh, sha256Of, startServer } from "../support/image.js";
import { assertNoResidue, netLabTest } from "../support/lab.js";
import { publishStream } from "../support/simplestreams.js";

netLabTest(
  "image.server: a squashfs's link to a host directory is not followed and its device node is dropped",
  { name: "ssh-hostile", subnet: 118 },
  async (lab) => {
    const target = join(lab.dir, "host-target");
    await mkdir(target);
    const tree = join(lab.dir, "tree");
    await mkdir(tree);
    await symlink(target, join(tree, "etc"));
    const sq = join(lab.dir, "hostile.squashfs");
    await sh("mksquashfs", [
      tree,
      sq,
      "-noappend",
      "-quiet",
      "-no-progress",
      "-p",
      "disk b 666 root root 8 0",
    ]);
    const arch = simplestreamsArch();
    const stream = join(lab.dir, "stream");
    await publishStream(
      stream,
      [
        {
          id: "hostile",
          aliases: "test/hostile",
          arch,
          versions: {
            "20250101": {
              "root.squashfs": {
                ftype: "squashfs",
                path: "h/root.squashfs",
                sha256: await sha256Of(sq),
                size: 1,
              },
            },
          },
        },
      ],
      { "h/root.squashfs": { copy: sq } },
    );
    const server = await startServer(lab.ns, stream);
    try {
      await lab.writeConfig({ image: { server: server.url(""), alias: "test/hostile", insecure: true } });
      const r = await lab.cli(["image", "build"]);
      assert.deepEqual(
        await readdir(target),
        [],
        `nothing written through the link:\n${r.stdout}\n${r.stderr}`,
      );
      const store = join(lab.workdir, "images");
      const images = (await readdir(store).catch(() => [])).filter((f) => f.endsWith(".squashfs"));
      for (const i of images) {
        const list = await sh("unsquashfs", ["-lls", join(store, i)]);
        assert.doesNotMatch(list, /^[bc]/m, `no device node in the image:\n${list}`);
      }
      await lab.cli(["run", "down", "--purge"]);
      await assertNoResidue(lab, "after run down --purge");
    } finally {
      await server.stop();
    }
  },
);
