// OCI images (image.oci), for real: a registry (Debian's docker-registry) on the loopback of the
// test's namespace holds the test image, pushed with skopeo. The lab comes up from it (ssh and real
// Ansible work), a second up changes nothing and asks the registry for nothing, a layer whose bytes
// were changed in the registry's storage is refused with nothing kept in the image store, and down
// --purge leaves nothing. The container runs `init: script` (sshd alone): what is tested is where the
// image comes from, not its boot, which test/lab/lab.test.ts and others prove on the same tree.
import assert from "node:assert/strict";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { summary, taskEvents } from "../support/json-events.js";
import { assertNoResidue, downPurgesStore, labTest, ok } from "../support/lab.js";
import { ensureTestOciLayout, startRegistry } from "../support/oci.js";

/** The largest blob of the registry's storage: the image's one layer. */
async function largestBlob(storage: string): Promise<string> {
  const root = join(storage, "docker/registry/v2/blobs/sha256");
  let best = { path: "", size: -1 };
  for (const a of await readdir(root))
    for (const d of await readdir(join(root, a))) {
      const path = join(root, a, d, "data");
      const { size } = await stat(path);
      if (size > best.size) best = { path, size };
    }
  return best.path;
}

labTest(
  "image.oci: up from a registry on loopback (ssh, Ansible), up again asks the registry for nothing, a tampered layer is refused and nothing kept, down --purge leaves nothing",
  { name: "oci", subnet: 91, containers: { count: 1, init: "script" } },
  async (lab) => {
    const layout = await ensureTestOciLayout();
    const registry = await startRegistry(lab.ns, lab.dir);
    try {
      await registry.push(layout, "test", "test/debian:12");
      await registry.push(layout, "test", "test/debian:again");
      const ref = `${registry.host}/test/debian:12`;
      // Plain http is refused unless the config says image.insecure.
      await lab.writeConfig({ image: { oci: ref } });
      const refused = await lab.cli(["run", "getimage"]);
      assert.notEqual(refused.exitCode, 0, "a plain-http registry needs image.insecure");

      await lab.writeConfig({ image: { oci: ref, insecure: true } });
      const up = ok(await lab.cli(["--json", "run", "up"]), "run up");
      assert.equal(summary(up).ok, true);
      assert.ok(taskEvents(up).some((e) => e.id === "image.oci" && e.state === "changed"));
      const store = join(lab.workdir, "images");
      const cached = (await readdir(store)).filter((f) => f.endsWith(".squashfs"));
      assert.equal(cached.length, 1, `one flattened image in the store: ${cached}`);

      assert.equal(ok(await lab.cli(["ssh", "oci-10", "--", "hostname"]), "ssh").stdout, "oci-10");
      const a = await lab.ns.run("ansible", ["-i", lab.inventory, "-m", "ping", "all"], { cwd: lab.dir });
      assert.equal(a.exitCode, 0, `${a.stdout}\n${a.stderr}`);
      assert.equal(a.stdout.match(/ \| SUCCESS =>/g)?.length, 1, a.stdout);

      const asked = registry.requests.length;
      const again = ok(await lab.cli(["--json", "run", "up"]), "second run up");
      assert.equal(summary(again).changed, 0, "a second up changes nothing");
      assert.deepEqual(registry.requests.slice(asked), [], "a second up asks the registry for nothing");

      // A changed byte in the layer: the copy of another tag of the same image is refused.
      const blob = await largestBlob(registry.storage);
      const f = await open(blob, "r+");
      try {
        const b = Buffer.alloc(1);
        await f.read(b, 0, 1, 4096);
        b[0] = b[0]! ^ 0xff;
        await f.write(b, 0, 1, 4096);
      } finally {
        await f.close();
      }
      const storeBefore = (await readdir(store)).sort();
      await lab.writeConfig({ image: { oci: `${registry.host}/test/debian:again`, insecure: true } });
      const tampered = await lab.cli(["image", "build"]);
      assert.notEqual(tampered.exitCode, 0, "a tampered layer is refused");
      assert.match(`${tampered.stdout}\n${tampered.stderr}`, /digest/i);
      assert.deepEqual((await readdir(store)).sort(), storeBefore, "nothing of the tampered pull is kept");

      await lab.writeConfig({ image: { oci: ref, insecure: true } });
      await downPurgesStore(lab, store, "the flattened image");
      await assertNoResidue(lab, "after run down --purge");
    } finally {
      await registry.stop();
    }
  },
);
