// OCI images are hostile input: a layer that plants a link to a host directory and then writes
// through it, and a block device node of the host's disk. The pull (skopeo, umoci as root) must write
// nothing outside its own directory (umoci resolves links inside the image's root), and the
// flattened image must hold no device node.
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { sh } from "../support/image.js";
import { assertNoResidue, netLabTest, ok } from "../support/lab.js";
import { startRegistry } from "../support/oci.js";

// Two layers in one tar stream order: the link first, then a file under it (what a second layer
// would do), and a device node of the host's first disk.
const TAR = `
import sys, tarfile, io
t = tarfile.open(sys.argv[1], "w")
def add(name, **kw):
    i = tarfile.TarInfo(name)
    data = kw.pop("data", None)
    for k, v in kw.items(): setattr(i, k, v)
    if data is not None: i.size = len(data)
    t.addfile(i, io.BytesIO(data) if data is not None else None)
add("escape", type=tarfile.SYMTYPE, linkname=sys.argv[2])
add("escape/pwned", data=b"written through a link\\n", mode=0o644)
add("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
add("etc/", type=tarfile.DIRTYPE, mode=0o755)
add("etc/os-release", data=b"ID=hostile\\n", mode=0o644)
t.close()
`;

netLabTest(
  "image.oci: a layer's link to a host directory is not followed and its device node is dropped",
  { name: "ocih", subnet: 92 },
  async (lab) => {
    const target = join(lab.dir, "host-target");
    await mkdir(target);
    const layout = join(lab.dir, "layout");
    const tar = join(lab.dir, "layer.tar");
    await sh("python3", ["-c", TAR, tar, target]);
    await sh("umoci", ["init", "--layout", layout]);
    await sh("umoci", ["new", "--image", `${layout}:h`]);
    await sh("umoci", ["raw", "add-layer", "--image", `${layout}:h`, tar]);
    const registry = await startRegistry(lab.ns, lab.dir);
    try {
      await registry.push(layout, "h", "test/hostile:1");
      await lab.writeConfig({ image: { oci: `${registry.host}/test/hostile:1`, insecure: true } });
      const pull = await lab.cli(["image", "build"]);
      assert.deepEqual(await readdir(target), [], `nothing written through the link:\n${pull.stderr}`);
      const store = join(lab.workdir, "images");
      const images = (await readdir(store).catch(() => [])).filter((f) => f.endsWith(".squashfs"));
      // umoci resolves the link inside the image's root: the file lands there, in the image.
      ok(pull, "image build (the pull)");
      assert.equal(images.length, 1);
      const list = await sh("unsquashfs", ["-lls", join(store, images[0]!)]);
      assert.doesNotMatch(list, /^[bc]/m, `no device node in the image:\n${list}`);
      assert.match(list, /squashfs-root\/escape -> /);
      assert.ok(list.includes(`squashfs-root${target}/pwned`), `the file stayed in the image:\n${list}`);
      ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
      assert.deepEqual(
        (await readdir(store).catch(() => [])).filter((f) => f.endsWith(".squashfs")),
        [],
      );
      await assertNoResidue(lab, "after run down --purge");
    } finally {
      await registry.stop();
    }
  },
);
