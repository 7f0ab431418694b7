// Image-server images (image.server + image.alias): reading a simplestreams index and products file
// written by hand as Incus' servers write them, choosing the product by alias and architecture and
// its newest version with a root squashfs, refusing what a hostile index may hold; and what the
// config takes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../config/load.js";
import {
  productsPaths,
  selectImage,
  simplestreamsArch,
  streamImageFile,
  streamPathProblem,
  streamUrl,
} from "../../src/image/simplestreams.js";

const A = "a".repeat(64);
const B = "b".repeat(64);
const C = "c".repeat(64);

const item = (ftype: string, path: string, sha256 = A, size = 100) => ({ ftype, path, sha256, size });

const products = (p: Record<string, unknown>) =>
  JSON.stringify({ content_id: "images", datatype: "image-downloads", format: "products:1.0", products: p });

const DEBIAN = {
  "debian:bookworm:amd64:default": {
    aliases: "debian/bookworm/default,debian/bookworm,debian/12/default,debian/12",
    arch: "amd64",
    os: "Debian",
    release: "bookworm",
    versions: {
      "20250101_05:24": {
        items: {
          "incus.tar.xz": item(
            "incus.tar.xz",
            "images/debian/bookworm/amd64/default/20250101_05:24/incus.tar.xz",
          ),
          "root.squashfs": item(
            "squashfs",
            "images/debian/bookworm/amd64/default/20250101_05:24/rootfs.squashfs",
            B,
            123,
          ),
        },
      },
      "20241231_05:24": {
        items: { "root.squashfs": item("squashfs", "images/old/rootfs.squashfs", C) },
      },
      // The newest has a virtual machine's disk only: not a container's root.
      "20250102_05:24": {
        items: {
          "incus.tar.xz": item("incus.tar.xz", "images/new/incus.tar.xz"),
          "disk.qcow2": item("disk-kvm.img", "images/new/disk.qcow2"),
        },
      },
    },
  },
  "debian:bookworm:arm64:default": {
    aliases: "debian/bookworm/default,debian/bookworm,debian/12/default,debian/12",
    arch: "arm64",
    versions: {
      "20250201_05:24": { items: { "root.squashfs": item("squashfs", "images/arm/rootfs.squashfs") } },
    },
  },
  "debian:trixie:amd64:default": {
    aliases: "debian/trixie,debian/13",
    arch: "amd64",
    versions: {
      "20250301_05:24": { items: { "root.squashfs": item("squashfs", "images/trixie/rootfs.squashfs") } },
    },
  },
};

test("simplestreams: the product by alias (one of its comma-separated aliases) and architecture, its newest version with a squashfs", () => {
  assert.deepEqual(selectImage(products(DEBIAN), "debian/12", "amd64"), {
    product: "debian:bookworm:amd64:default",
    version: "20250101_05:24",
    path: "images/debian/bookworm/amd64/default/20250101_05:24/rootfs.squashfs",
    sha256: B,
    size: 123,
  });
  assert.equal(selectImage(products(DEBIAN), "debian/bookworm", "arm64")?.path, "images/arm/rootfs.squashfs");
  assert.equal(selectImage(products(DEBIAN), "debian/13", "amd64")?.product, "debian:trixie:amd64:default");
  // No such alias, or not for this architecture; an alias is matched whole, not as a prefix.
  assert.equal(selectImage(products(DEBIAN), "debian/14", "amd64"), undefined);
  assert.equal(selectImage(products(DEBIAN), "debian/13", "arm64"), undefined);
  assert.equal(selectImage(products(DEBIAN), "debian", "amd64"), undefined);
  assert.equal(simplestreamsArch("x64"), "amd64");
  assert.equal(simplestreamsArch("arm64"), "arm64");
});

test("simplestreams: a products file that contradicts itself, or names a bad path or digest, is refused", () => {
  const one = (squashfs: Record<string, unknown>) =>
    products({
      p: { aliases: "x/1", arch: "amd64", versions: { "1": { items: { "root.squashfs": squashfs } } } },
    });
  for (const path of [
    "../x",
    "a/../../x",
    "/etc/shadow",
    "a//b",
    "./a",
    "http://evil/x",
    "a/%2e%2e/b",
    "a\\b",
    "a b",
    "",
  ])
    assert.throws(() => selectImage(one(item("squashfs", path)), "x/1", "amd64"), /path/, path);
  assert.throws(() => selectImage(one({ ftype: "squashfs", path: "a/b" }), "x/1", "amd64"), /SHA-256/);
  assert.throws(() => selectImage(one(item("squashfs", "a/b", "z".repeat(64))), "x/1", "amd64"), /SHA-256/);
  assert.throws(
    () => selectImage(products({ p: { aliases: "x/1", arch: "amd64", versions: {} } }), "x/1", "amd64"),
    /no version with a squashfs/,
  );
  const twice = { aliases: "x/1", arch: "amd64", versions: {} };
  assert.throws(() => selectImage(products({ p: twice, q: twice }), "x/1", "amd64"), /more than one product/);
  assert.throws(() => selectImage("[", "x/1", "amd64"), /not JSON/);
  assert.throws(() => selectImage("[]", "x/1", "amd64"), /no "products"/);
  assert.equal(streamPathProblem("images/debian/12/20250101_05:24/rootfs.squashfs"), undefined);
});

test("simplestreams: index.json names the products files of datatype image-downloads; a path in it that climbs out is refused", () => {
  const index = (entries: Record<string, unknown>) => JSON.stringify({ format: "index:1.0", index: entries });
  assert.deepEqual(
    productsPaths(
      index({
        images: { datatype: "image-downloads", path: "streams/v1/images.json", products: ["a"] },
        other: { datatype: "content-download", path: "streams/v1/other.json" },
      }),
    ),
    ["streams/v1/images.json"],
  );
  assert.throws(
    () => productsPaths(index({ images: { datatype: "image-downloads", path: "../../etc/passwd" } })),
    /"\.\." part/,
  );
  assert.throws(
    () => productsPaths(index({ images: { datatype: "image-downloads", path: "/etc/passwd" } })),
    /absolute/,
  );
  assert.throws(() => productsPaths(index({})), /names no products file/);
  assert.throws(() => productsPaths("{}"), /no "index"/);
  assert.equal(
    streamUrl("https://images.example.org", "images/d/20250101_05:24/rootfs.squashfs"),
    "https://images.example.org/images/d/20250101_05:24/rootfs.squashfs",
  );
  assert.equal(
    streamUrl("https://example.org/mirror/", "streams/v1/index.json"),
    "https://example.org/mirror/streams/v1/index.json",
  );
  assert.match(
    streamImageFile("https://x", "debian/12", "amd64"),
    /^incus-debian_12-amd64-[0-9a-f]{12}\.squashfs$/,
  );
  assert.notEqual(
    streamImageFile("https://x", "debian/12", "amd64"),
    streamImageFile("https://y", "debian/12", "amd64"),
  );
});

test("simplestreams config: server needs alias and https (or image.insecure), and is one image source alone", () => {
  const problems = (image: Record<string, unknown>) => {
    try {
      parseConfig(JSON.stringify({ image }), "t.yaml");
      return "";
    } catch (e) {
      return String((e as Error).message);
    }
  };
  assert.equal(problems({ server: "https://images.example.org", alias: "debian/12" }), "");
  assert.equal(problems({ server: "http://127.0.0.1:8080", alias: "debian/12", insecure: true }), "");
  assert.match(problems({ server: "http://images.example.org", alias: "debian/12" }), /plain http/);
  assert.match(problems({ server: "https://images.example.org" }), /needs image\.alias/);
  assert.match(problems({ alias: "debian/12" }), /image\.server, which is not set/);
  assert.match(problems({ server: "https://x.org", alias: "debian/12", oci: "x/y:1" }), /image\.oci/);
  assert.match(problems({ server: "https://x.org", alias: "debian/12", sha256: A }), /image\.sha256/);
  assert.match(problems({ server: "https://x.org", alias: "debian/12", build: {} }), /image\.build/);
  assert.match(problems({ server: "file:///srv/x", alias: "debian/12" }), /https/);
  assert.match(problems({ server: "https://x.org", alias: "../12" }), /alias/);
});
