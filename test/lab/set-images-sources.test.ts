// A lab of two sets from two image sources, for real: one set on the config's image (the cached
// test image file) and one on an image server's image (containers.sets[].image.server + alias), a
// simplestreams tree published over https on the loopback of the test's namespace. Both sets'
// containers come up and answer ssh and a playbook (idempotence on); validate and status name both
// images; a second up changes nothing and asks the server for nothing; down --purge removes the
// pulled image, keeps the user's file, and leaves nothing else.
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { simplestreamsArch } from "../../src/image/simplestreams.js";
import { startServer } from "../support/image.js";
import { summary, taskEvents, taskIds } from "../support/json-events.js";
import { assertNoResidue, downPurgesStore, labTest, ok, SETS_ONLY } from "../support/lab.js";
import { ensureTestRootSquashfs, loopbackCertificate, publishStream } from "../support/simplestreams.js";

const VERSION = "20250101_00:00";

const PLAY = `- hosts: aplspawned
  become: true
  tasks:
    - name: each host's set, from its groups
      ansible.builtin.copy:
        dest: /etc/seen
        content: "{{ group_names | join(',') }}\\n"
`;

labTest(
  "set images from two sources: a set on the config's image file and a set on an image server's image come up side by side, answer ssh and a playbook; up again changes and downloads nothing; down --purge leaves nothing",
  { name: "ssets", subnet: 137 },
  async (lab) => {
    const root = await ensureTestRootSquashfs();
    const arch = simplestreamsArch();
    const rootPath = `images/debian/bookworm/${arch}/default/${VERSION}/rootfs.squashfs`;
    const tree = join(lab.dir, "stream");
    await publishStream(
      tree,
      [
        {
          id: `debian:bookworm:${arch}:default`,
          aliases: "debian/bookworm,debian/12",
          arch,
          versions: {
            [VERSION]: {
              "root.squashfs": { ftype: "squashfs", path: rootPath, sha256: root.sha256, size: root.size },
            },
          },
        },
      ],
      { [rootPath]: { link: root.path } },
    );
    const { cert, key, trust } = await loopbackCertificate(lab.dir);
    const server = await startServer(lab.ns, tree, { tls: { cert, key } });
    try {
      const playbook = await lab.file("seen.yml", PLAY);
      await lab.writeConfig({
        containers: {
          ...SETS_ONLY,
          sets: [
            { name: "deb", pattern: "ssets-deb%d", groups: ["onfile"] },
            {
              name: "inc",
              pattern: "ssets-inc%d",
              groups: ["onserver"],
              image: { server: server.tlsUrl(""), alias: "debian/12" },
            },
          ],
        },
        provision: { playbook, idempotence: true },
      });

      // validate's line names both images: the file and the pulled one in the store.
      const store = join(lab.workdir, "images");
      const valid = ok(await lab.cli(["validate"]), "validate");
      assert.match(valid.stdout, /2 containers \(deb ×1, inc ×1\)/);
      assert.ok(valid.stdout.includes(lab.image.path), `validate names the config's image: ${valid.stdout}`);
      assert.match(valid.stdout, new RegExp(`${store}/incus-debian_12-${arch}-[0-9a-f]{12}\\.squashfs`));

      const up = ok(await lab.cli(["--json", "run", "up"], trust), "run up");
      assert.equal(summary(up).ok, true);
      const changed = taskEvents(up)
        .filter((e) => e.state === "changed")
        .map((e) => e.id);
      for (const id of ["image.server[inc]", "image.loop", "image.loop[inc]"])
        assert.ok(changed.includes(id), `${id} changed: ${changed.join(" ")}`);
      assert.deepEqual(
        [...new Set(server.requests.filter((r) => r.method === "GET").map((r) => r.url))],
        ["/streams/v1/index.json", "/streams/v1/images.json", `/${rootPath}`],
        "the index, the products file and the squashfs, once",
      );
      assert.deepEqual(
        (await readdir(store)).filter((f) => f.endsWith(".squashfs")).length,
        1,
        "the set's image is in the store",
      );

      // Each set's container runs on its own image's lower layer, answers ssh and ran the playbook.
      const labDir = join(lab.workdir, lab.name);
      const mounts = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"])).stdout
        .split("\n")
        .map((l) => l.split(" "));
      for (const [n, lower, groups] of [
        ["ssets-deb1", `${labDir}/lower`, "aplspawned,onfile"],
        ["ssets-inc1", `${labDir}/lower-inc`, "aplspawned,onserver"],
      ] as const) {
        assert.equal(ok(await lab.cli(["ssh", n, "--", "hostname"]), `ssh ${n}`).stdout, n);
        const seen = ok(await lab.cli(["exec", n, "--", "cat", "/etc/seen"]), `/etc/seen on ${n}`);
        assert.equal(seen.stdout.trim(), groups);
        const overlay = mounts.find(([t, , fs]) => t === join(lab.machinesDir, n) && fs === "overlay");
        assert.ok(overlay, `${n} has its overlay`);
        assert.match(overlay[3]!, new RegExp(`lowerdir=${lower}(,|$)`), `${n}'s lower is ${lower}`);
      }

      const status = ok(await lab.cli(["status"], trust), "status");
      assert.match(status.stdout, /all \d+ checks passed/);

      const asked = server.requests.length;
      const again = ok(await lab.cli(["--json", "run", "up"], trust), "second run up");
      // The playbook runs at every up (its second pass, idempotence, changed nothing): nothing else does.
      assert.deepEqual(taskIds(again, "changed"), ["lab.provision"], "a second up changes nothing");
      assert.deepEqual(server.requests.slice(asked), [], "a second up asks the server for nothing");

      await downPurgesStore(lab, store, "the pulled image", trust);
      assert.ok((await stat(lab.image.path)).isFile(), "the config's image file stays");
      await assertNoResidue(lab, "after run down --purge");
    } finally {
      await server.stop();
    }
  },
);
