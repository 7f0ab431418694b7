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

test("set images are refused without a url, checked as the config's image is, and must agree on a shared file", () => {
  assert.deepEqual(problems("containers:\n  sets:\n    - {name: a, image: {build: {suite: trixie}}}\n"), [
    "containers.sets.0.image.url: required (line 3, column 24)",
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
