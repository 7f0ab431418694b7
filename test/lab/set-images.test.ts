// A lab of two Debian suites (containers.sets[].image): a bookworm set on the lab's image and a
// trixie set on an image of its own, both built by aplspawn from their recipes (cached under
// /var/cache). Each image is attached once, as its own read-only lower layer under its set's
// overlays; a real playbook uses the sets' groups and vars and branches on the release, idempotence
// on; `image build` of the lab sees both images; down leaves nothing, the trixie image no loop device.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_PACKAGES } from "../../config/schema.js";
import { ensureTestImage, loopsOf } from "../support/image.js";
import { assertNoResidue, ok, SETS_ONLY, withLab } from "../support/lab.js";
import { skip } from "../support/ns.js";

/** The second suite: Debian 13. */
const TRIXIE = {
  suite: "trixie",
  mirror: "http://deb.debian.org/debian",
  packages: DEFAULT_PACKAGES,
  arch: process.arch,
};

const PLAY = `- hosts: debian
  become: true
  tasks:
    - name: what each host is, from facts, its set's groups and vars
      ansible.builtin.copy:
        dest: /etc/seen
        content: "{{ ansible_distribution_release }} {{ expected }} {{ group_names | join(',') }}\\n"
    - name: only on the new release
      ansible.builtin.copy:
        dest: /etc/only-trixie
        content: "{{ ansible_distribution_major_version }}\\n"
      when: ansible_distribution_release == 'trixie'
`;

test("set images: a bookworm set and a trixie set in one lab, each image attached once as its own lower layer; a playbook branches on the release, idempotent; down leaves nothing", {
  skip,
}, async () => {
  const trixie = await ensureTestImage(TRIXIE);
  await withLab("simg", 61, async (lab) => {
    const playbook = await lab.file("suites.yml", PLAY);
    const trixieImage = {
      url: `file://${trixie.path}`,
      sha256: trixie.sha256,
      build: { suite: "trixie" },
    };
    await lab.writeConfig({
      containers: {
        ...SETS_ONLY,
        sets: [
          { name: "old", pattern: "simg-old%d", groups: ["stable"], vars: { expected: "bookworm" } },
          {
            name: "new",
            pattern: "simg-new%d",
            count: 2,
            groups: ["testing"],
            vars: { expected: "trixie" },
            image: trixieImage,
          },
        ],
      },
      inventory: { children: { debian: ["stable", "testing"] } },
      provision: { playbook, idempotence: true },
    });

    // `image build` of the lab sees both images, each with its own recipe, both there already.
    const built = ok(await lab.cli(["--json", "image", "build"]), "image build of both images");
    const builds = built.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; id: string; state: string })
      .filter((e) => e.event === "task" && e.state !== "running");
    assert.deepEqual(
      builds.map((e) => [e.id, e.state]),
      [
        ["image.build", "ok"],
        ["image.build[new]", "ok"],
      ],
    );

    ok(await lab.cli(["run", "up"]), "run up with two images and a playbook");

    for (const [n, release, groups] of [
      ["simg-old1", "bookworm", "aplspawned,debian,stable"],
      ["simg-new1", "trixie", "aplspawned,debian,testing"],
      ["simg-new2", "trixie", "aplspawned,debian,testing"],
    ] as const) {
      const os = ok(await lab.cli(["exec", n, "--", "cat", "/etc/os-release"]), `os-release of ${n}`);
      assert.match(os.stdout, new RegExp(`^VERSION_CODENAME=${release}$`, "m"), `${n} runs ${release}`);
      const seen = ok(await lab.cli(["exec", n, "--", "cat", "/etc/seen"]), `/etc/seen on ${n}`);
      assert.equal(seen.stdout.trim(), `${release} ${release} ${groups}`);
      const only = await lab.cli(["exec", n, "--", "cat", "/etc/only-trixie"]);
      if (release === "trixie") assert.equal(ok(only).stdout.trim(), "13");
      else assert.notEqual(only.exitCode, 0, "the trixie-only task ran on bookworm");
    }

    // Each image attached once, mounted read-only at its own lower directory, under its set's overlays.
    const labDir = join(lab.workdir, lab.name);
    const mounts = (await lab.ns.run("findmnt", ["-rn", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"])).stdout
      .split("\n")
      .map((l) => l.split(" "));
    const lowerOf = (dir: string) => mounts.filter(([t]) => t === dir);
    for (const dir of [`${labDir}/lower`, `${labDir}/lower-new`]) {
      const m = lowerOf(dir);
      assert.equal(m.length, 1, `${dir} is mounted once`);
      assert.match(m[0]![3]!, /(^|,)ro(,|$)/, `${dir} is read-only`);
    }
    assert.notEqual(lowerOf(`${labDir}/lower`)[0]![1], lowerOf(`${labDir}/lower-new`)[0]![1]);
    assert.equal((await loopsOf(trixie.path)).length, 1, "the trixie image is attached once");
    for (const [n, lower] of [
      ["simg-old1", `${labDir}/lower`],
      ["simg-new1", `${labDir}/lower-new`],
      ["simg-new2", `${labDir}/lower-new`],
    ] as const) {
      const overlay = mounts.find(([t, , fs]) => t === join(lab.machinesDir, n) && fs === "overlay");
      assert.ok(overlay, `${n} has its overlay`);
      assert.match(overlay[3]!, new RegExp(`lowerdir=${lower}(,|$)`), `${n}'s lower is ${lower}`);
    }

    const status = ok(await lab.cli(["status"]), "status with two images");
    assert.ok(status.stdout.includes(trixie.path), "status checks the second image");

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after down");
    assert.deepEqual(await loopsOf(trixie.path), [], "the trixie image is still attached");
  });
});
