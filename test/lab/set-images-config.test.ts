// Per-set images (containers.sets[].image): which images a lab has (one per file), the lower layer
// each container runs on, the steps that get and attach each one once, `image build` of every
// image, and the config errors. The real lab of two images is test/lab/set-images.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { containerSpecs } from "../../config/containers.js";
import { labImages } from "../../config/images.js";
import { parseConfig } from "../../config/load.js";
import { listTaskIds, taskSteps } from "../../src/runner/task.js";
import { attachSteps } from "../../workflows/attach.js";
import { getimageSteps, purgeImageSteps } from "../../workflows/getimage.js";
import { up } from "../../workflows/up.js";
import { problems } from "../support/bad-configs.js";

const TWO = `workdir: /w
network: {address: 10.10.12.1/26}
containers:
  machinesDir: /m
  sets:
    - name: web
      count: 2
    - name: old
      image: {url: "file:///img/bookworm.img", build: {suite: bookworm}}
    - name: new
      image: {url: "file:///img/trixie.img", build: {suite: trixie}}
    - name: new-too
      image: {url: "file:///img/trixie.img", build: {suite: trixie}}
`;

test("set images: one image per file, the config's own for sets without one; each container on its image's lower layer", () => {
  const c = parseConfig(TWO, "t.yaml");
  const images = labImages(c);
  assert.deepEqual(
    images.map((i) => [i.id, i.path, i.lower, i.sets.join(",")]),
    [
      [undefined, "/var/lib/aplspawn/images/debian-bookworm.img", "/w/default/lower", "web"],
      ["old", "/img/bookworm.img", "/w/default/lower-old", "old"],
      ["new", "/img/trixie.img", "/w/default/lower-new", "new,new-too"],
    ],
  );
  assert.deepEqual(
    containerSpecs(c).map((s) => [s.name, s.image]),
    [
      ["web1", undefined],
      ["web2", undefined],
      ["old1", "old"],
      ["new1", "new"],
      ["new-too1", "new"],
    ],
  );
  // Every overlay's lower is its image's root.
  const overlays = taskSteps(up(c, {}).steps).filter((s) => s.def.kind === "container.overlay");
  assert.deepEqual(
    overlays.map((s) => [s.scope, (s.params as { lower: string }).lower]),
    [
      ["web1", "/w/default/lower"],
      ["web2", "/w/default/lower"],
      ["old1", "/w/default/lower-old"],
      ["new1", "/w/default/lower-new"],
      ["new-too1", "/w/default/lower-new"],
    ],
  );
});

test("set images: each image is built or verified and attached once, under ids of its own; the config's image keeps its ids", () => {
  const c = parseConfig(TWO, "t.yaml");
  assert.deepEqual(listTaskIds(getimageSteps(c)), [
    "image.build",
    "image.verify",
    "image.build[old]",
    "image.verify[old]",
    "image.build[new]",
    "image.verify[new]",
  ]);
  assert.deepEqual(listTaskIds(attachSteps(c)), [
    "image.loop",
    "image.lower",
    "image.loop[old]",
    "image.lower[old]",
    "image.loop[new]",
    "image.lower[new]",
  ]);
  const ids = listTaskIds(up(c, {}).steps);
  for (const id of ["image.loop", "image.loop[old]", "image.loop[new]"])
    assert.equal(ids.filter((i) => i === id).length, 1, `${id} once in up`);
  const loops = taskSteps(up(c, {}).steps).filter((s) => s.def.kind === "image.loop");
  assert.deepEqual(
    loops.map((s) => s.params),
    [
      { image: "/var/lib/aplspawn/images/debian-bookworm.img", lowerDir: "/w/default/lower" },
      { image: "/img/bookworm.img", lowerDir: "/w/default/lower-old" },
      { image: "/img/trixie.img", lowerDir: "/w/default/lower-new" },
    ],
  );
  // The builds follow each image's own recipe.
  const builds = taskSteps(getimageSteps(c)).filter((s) => s.def.kind === "image.build");
  assert.deepEqual(
    builds.map((s) => [
      (s.params as { target: string }).target,
      (s.params as { recipe: { suite: string } }).recipe.suite,
    ]),
    [
      ["/var/lib/aplspawn/images/debian-bookworm.img", "bookworm"],
      ["/img/bookworm.img", "bookworm"],
      ["/img/trixie.img", "trixie"],
    ],
  );
});

test("set images: a lab whose every set has an image of its own never gets the config's image", () => {
  const c = parseConfig(
    `containers:
  sets:
    - {name: a, image: {url: "file:///img/a.img"}}
    - {name: b, image: {url: "https://example.org/b.img", sha256: "${"a".repeat(64)}"}}
`,
    "t.yaml",
  );
  assert.deepEqual(
    labImages(c).map((i) => i.id),
    ["a", "b"],
  );
  assert.deepEqual(listTaskIds(getimageSteps(c)), [
    "image.verify[a]",
    "image.dirs[b]",
    "image.precheck[b]",
    "image.download[b]",
  ]);
  // down --purge deletes the downloaded one alone.
  assert.deepEqual(listTaskIds(purgeImageSteps(c)), ["image.purge[b]"]);
});

test("set images: a set naming the config's own image file shares it (its id, its lower)", () => {
  const c = parseConfig(
    `containers:
  sets:
    - {name: a}
    - {name: b, image: {url: "file:///var/lib/aplspawn/images/debian-bookworm.img", build: {}}}
`,
    "t.yaml",
  );
  assert.deepEqual(
    labImages(c).map((i) => [i.id, i.sets.join(",")]),
    [[undefined, "a,b"]],
  );
  assert.deepEqual(listTaskIds(attachSteps(c)), ["image.loop", "image.lower"]);
});

test("set images are refused without a source, checked as the config's image is, and must agree on a shared file", () => {
  assert.deepEqual(problems("containers:\n  sets:\n    - {name: a, image: {build: {suite: trixie}}}\n"), [
    "containers.sets.0.image: names no image: give its url (a file or a download), oci (an OCI image) or server with alias (an image server's) (line 3, column 24)",
  ]);
  const p = problems(`image: {loopDevice: /dev/loop7}
containers:
  sets:
    - {name: a, image: {url: "https://h/a.img"}}
    - {name: b, image: {url: "file:///img/x.img", build: {suite: trixie}}}
    - {name: c, image: {url: "file:///img/x.img", build: {suite: bookworm}}}
    - {name: d, image: {url: "file:///img/d.img", loopDevice: /dev/loop7}}
`);
  assert.deepEqual(p, [
    "containers.sets.0.image: a downloaded image must be verified: give containers.sets.0.image.sha256 or containers.sets.0.image.checksums (or containers.sets.0.image.insecure: true to accept it unverified) (line 4, column 24)",
    "containers.sets.2.image: names the file /img/x.img as containers.sets.1.image does, but differs from it (checksum, build recipe or another key): one file is one image; give it a url of its own (line 6, column 24)",
    "containers.sets.3.image.loopDevice: /dev/loop7 is pinned for /var/lib/aplspawn/images/debian-bookworm.img too; one device holds one image (line 7, column 63)",
  ]);
});

const DEBIAN = `{server: "https://images.example.org", alias: debian/12}`;

test("set images from a registry and an image server: pulled into the store once each, under their sets' ids; down --purge removes both", () => {
  const c = parseConfig(
    `containers:
  machinesDir: /m
  sets:
    - {name: deb}
    - {name: rocky, count: 2, image: {oci: "quay.io/rockylinux/rockylinux:9"}}
    - {name: incus, image: ${DEBIAN}}
    - {name: incus-too, image: ${DEBIAN}}
`,
    "t.yaml",
  );
  const images = labImages(c);
  assert.deepEqual(
    images.map((i) => [i.id, i.sets.join(",")]),
    [
      [undefined, "deb"],
      ["rocky", "rocky"],
      ["incus", "incus,incus-too"],
    ],
  );
  assert.match(images[1]!.path, /^\/var\/lib\/aplspawn\/images\/oci-rockylinux-9-[0-9a-f]{12}\.squashfs$/);
  assert.match(
    images[2]!.path,
    /^\/var\/lib\/aplspawn\/images\/incus-debian_12-[a-z0-9]+-[0-9a-f]{12}\.squashfs$/,
  );
  assert.deepEqual(listTaskIds(getimageSteps(c)), [
    "image.build",
    "image.verify",
    "image.dirs[rocky]",
    "image.oci[rocky]",
    "image.dirs[incus]",
    "image.server[incus]",
  ]);
  const pulls = taskSteps(getimageSteps(c)).filter((s) => ["image.oci", "image.server"].includes(s.def.kind));
  assert.deepEqual(
    pulls.map((s) => {
      const { ref, server, alias, path } = s.params as Record<string, string>;
      return [ref ?? `${server} ${alias}`, path];
    }),
    [
      ["quay.io/rockylinux/rockylinux:9", images[1]!.path],
      ["https://images.example.org debian/12", images[2]!.path],
    ],
  );
  assert.deepEqual(listTaskIds(attachSteps(c)), [
    "image.loop",
    "image.lower",
    "image.loop[rocky]",
    "image.lower[rocky]",
    "image.loop[incus]",
    "image.lower[incus]",
  ]);
  assert.deepEqual(
    containerSpecs(c).map((s) => [s.name, s.image]),
    [
      ["deb1", undefined],
      ["rocky1", "rocky"],
      ["rocky2", "rocky"],
      ["incus1", "incus"],
      ["incus-too1", "incus"],
    ],
  );
  // The config's image is a file of the user's: the purge deletes the pulled ones alone.
  assert.deepEqual(listTaskIds(purgeImageSteps(c)), ["image.purge[rocky]", "image.purge[incus]"]);
});

test("set images from a registry or an image server are checked as the config's are: one source, server with alias, one pulled image one section", () => {
  const sets = (...images: string[]) =>
    `containers:\n  sets:\n${images.map((i, n) => `    - {name: s${n}, image: ${i}}\n`).join("")}`;
  assert.deepEqual(
    problems(
      sets(`{url: "file:///img/a.img", oci: "x.org/y:1"}`, `{url: "file:///img/b.img", ${DEBIAN.slice(1)}`),
    ),
    [
      'containers.sets.0.image.url: give one image source: url, oci, or server with alias, not url and oci (line 3, column 31: "file:///img/a.img")',
      'containers.sets.1.image.url: give one image source: url, oci, or server with alias, not url and server (line 4, column 31: "file:///img/b.img")',
    ],
  );
  assert.deepEqual(problems(sets(`{server: "https://images.example.org"}`, "{alias: debian/12}")), [
    "containers.sets.0.image.server: needs containers.sets.0.image.alias, the image's alias on it (e.g. debian/12) (line 3, column 34)",
    "containers.sets.1.image.alias: names an image on containers.sets.1.image.server, which is not set (line 4, column 33)",
  ]);
  assert.deepEqual(
    problems(
      sets(
        `{oci: "x.org/y:1", sha256: "${"a".repeat(64)}"}`,
        `{server: "http://images.example.org", alias: debian/12}`,
        `{oci: "x.org/z:1", server: "https://images.example.org", alias: debian/12}`,
      ),
    ),
    [
      "containers.sets.0.image.oci: containers.sets.0.image.sha256 apply to a file image, not an OCI image (line 3, column 31)",
      "containers.sets.1.image.server: over plain http anyone on the way can rewrite the index with its checksums: use https, or containers.sets.1.image.insecure: true (line 4, column 34)",
      "containers.sets.2.image.server: containers.sets.2.image.oci does not apply to an image server's image (give one image source) (line 5, column 52)",
    ],
  );
  // Two sets naming one pulled image (or a set and the config) must agree on its every key.
  assert.deepEqual(
    problems(`image: {oci: "x.org/y:1"}
containers:
  sets:
    - {name: a, image: {oci: "x.org/y:1"}}
    - {name: b, image: {oci: "x.org/y:1", insecure: true}}
    - {name: c, image: ${DEBIAN}}
    - {name: d, image: {server: "https://images.example.org", alias: debian/12, maxSize: 1000}}
`),
    [
      "containers.sets.1.image: names the image x.org/y:1 as image does, but differs from it (insecure, maxSize or another key): one image is pulled once; give both the same keys (line 5, column 24)",
      "containers.sets.3.image: names the image debian/12 from https://images.example.org (image.server) as containers.sets.2.image does, but differs from it (insecure, maxSize or another key): one image is pulled once; give both the same keys (line 7, column 24)",
    ],
  );
  // The config's own pulled image, named again by a set with the same keys, is one image.
  const c = parseConfig(
    `image: {url: "file:///img/ignored.img", oci: "x.org/y:1"}\ncontainers:\n  sets:\n    - {name: a}\n    - {name: b, image: {oci: "x.org/y:1"}}\n`,
    "t.yaml",
  );
  assert.deepEqual(
    labImages(c).map((i) => [i.id, i.sets.join(",")]),
    [[undefined, "a,b"]],
  );
});
