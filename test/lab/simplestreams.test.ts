// Image-server images (image.server + image.alias), for real: a simplestreams tree (index.json,
// images.json, a root squashfs cut from the test image) served over https on the loopback of the
// test's namespace. The lab comes up from it (the download cut once and resumed), answers ssh, a
// second up asks the server for nothing; a squashfs whose SHA-256 is not the index's is refused, an
// index naming a path with ".." is refused before anything is asked for, neither keeps anything;
// plain http without image.insecure is refused by validate; down --purge leaves nothing. The
// container runs `init: script` (sshd alone): what is tested is where the image comes from, not its
// boot.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { simplestreamsArch } from "../../src/image/simplestreams.js";
import { startServer } from "../support/image.js";
import { summary, taskEvents } from "../support/json-events.js";
import { assertNoResidue, downPurgesStore, labTest, ok } from "../support/lab.js";
import { ensureTestRootSquashfs, loopbackCertificate, publishStream } from "../support/simplestreams.js";

const VERSION = "20250101_00:00";

labTest(
  "image.server: up from a simplestreams server on loopback (ssh), up again asks it for nothing, a squashfs not matching the index and a path with .. are refused with nothing kept, down --purge leaves nothing",
  { name: "incus", subnet: 117, containers: { count: 1, init: "script" } },
  async (lab) => {
    const root = await ensureTestRootSquashfs();
    const arch = simplestreamsArch();
    const rootPath = `images/debian/bookworm/${arch}/default/${VERSION}/rootfs.squashfs`;
    const meta = { ftype: "incus.tar.xz", path: "images/meta.tar.xz", sha256: "0".repeat(64), size: 1 };
    const squashfs = (path: string, sha256: string) => ({
      ftype: "squashfs",
      path,
      sha256,
      size: root.size,
    });
    const wrong = root.sha256.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    const tree = join(lab.dir, "stream");
    await publishStream(
      tree,
      [
        {
          id: `debian:bookworm:${arch}:default`,
          aliases: "debian/bookworm/default,debian/bookworm,debian/12/default,debian/12",
          arch,
          versions: {
            // Older, and a newer one that has only a virtual machine's disk: the middle one is chosen.
            "20241201_00:00": {
              "incus.tar.xz": meta,
              "root.squashfs": squashfs("images/old.squashfs", wrong),
            },
            [VERSION]: { "incus.tar.xz": meta, "root.squashfs": squashfs(rootPath, root.sha256) },
            "20250102_00:00": {
              "incus.tar.xz": meta,
              "disk.qcow2": { ftype: "disk-kvm.img", path: "images/disk.qcow2", sha256: wrong, size: 1 },
            },
          },
        },
        {
          id: `test:tampered:${arch}`,
          aliases: "test/tampered",
          arch,
          versions: { [VERSION]: { "root.squashfs": squashfs(rootPath, wrong) } },
        },
        {
          id: `test:climb:${arch}`,
          aliases: "test/climb",
          arch,
          versions: { [VERSION]: { "root.squashfs": squashfs(`images/../../${rootPath}`, root.sha256) } },
        },
      ],
      { [rootPath]: { link: root.path } },
    );
    const { cert, key, trust } = await loopbackCertificate(lab.dir);
    // The squashfs is cut off after 4 MiB once: the download resumes where it broke.
    const server = await startServer(lab.ns, tree, {
      cutAfter: 4 * 1024 * 1024,
      cutTimes: 1,
      tls: { cert, key },
    });
    try {
      // Plain http only with image.insecure: validate refuses it (exit 2).
      await lab.writeConfig({ image: { server: server.url(""), alias: "debian/12" } });
      const plain = await lab.cli(["validate"]);
      assert.equal(plain.exitCode, 2, `${plain.stdout}\n${plain.stderr}`);
      assert.match(plain.stderr, /image\.server: over plain http .*image\.insecure/);

      await lab.writeConfig({ image: { server: server.tlsUrl(""), alias: "debian/12" } });
      const up = ok(await lab.cli(["--json", "run", "up"], trust), "run up");
      assert.equal(summary(up).ok, true);
      assert.ok(taskEvents(up).some((e) => e.id === "image.server" && e.state === "changed"));
      const gets = server.requests.filter((r) => r.method === "GET").map((r) => r.url);
      assert.deepEqual(
        [...new Set(gets)],
        ["/streams/v1/index.json", "/streams/v1/images.json", `/${rootPath}`],
        "the index, the products file, the newest squashfs: nothing else",
      );
      assert.ok(
        server.requests.some((r) => r.url === `/${rootPath}` && r.range?.startsWith("bytes=")),
        "the cut download was resumed with a Range request",
      );
      const store = join(lab.workdir, "images");
      const cached = await readdir(store);
      assert.equal(
        cached.filter((f) => f.endsWith(".squashfs")).length,
        1,
        `one image in the store: ${cached}`,
      );
      assert.deepEqual(
        cached.filter((f) => f.startsWith(".") && !f.endsWith(".lock") && f !== ".stamps"),
        [],
        `no temporary file is left in the store: ${cached}`,
      );
      assert.equal(ok(await lab.cli(["ssh", "incus-10", "--", "hostname"]), "ssh").stdout, "incus-10");

      const asked = server.requests.length;
      const again = ok(await lab.cli(["--json", "run", "up"], trust), "second run up");
      assert.equal(summary(again).changed, 0, "a second up changes nothing");
      assert.deepEqual(server.requests.slice(asked), [], "a second up asks the server for nothing");

      const storeBefore = (await readdir(store)).sort();
      await lab.writeConfig({ image: { server: server.tlsUrl(""), alias: "test/tampered" } });
      const tampered = await lab.cli(["image", "build"], trust);
      assert.notEqual(tampered.exitCode, 0, "a squashfs that is not the index's is refused");
      assert.match(`${tampered.stdout}\n${tampered.stderr}`, /Checksum mismatch/);
      assert.deepEqual((await readdir(store)).sort(), storeBefore, "nothing of the refused download is kept");

      const before = server.requests.length;
      await lab.writeConfig({ image: { server: server.tlsUrl(""), alias: "test/climb" } });
      const climb = await lab.cli(["image", "build"], trust);
      assert.notEqual(climb.exitCode, 0, "a path with .. is refused");
      assert.match(`${climb.stdout}\n${climb.stderr}`, /"\.\." part/);
      assert.deepEqual(
        server.requests.slice(before).map((r) => r.url),
        ["/streams/v1/index.json", "/streams/v1/images.json"],
        "nothing is asked for past the index",
      );
      assert.deepEqual((await readdir(store)).sort(), storeBefore, "nothing is kept");

      await lab.writeConfig({ image: { server: server.tlsUrl(""), alias: "debian/12" } });
      await downPurgesStore(lab, store, "the image", trust);
      await assertNoResidue(lab, "after run down --purge");
    } finally {
      await server.stop();
    }
  },
);
