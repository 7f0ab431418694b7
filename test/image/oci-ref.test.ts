// OCI references (image.oci): what is taken, what is refused, and the file each is cached as.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configSchema } from "../../config/schema.js";
import { ociImageFile, parseOciRef } from "../../src/image/oci-ref.js";

const D = "a".repeat(64);

test("OCI references: registry, name, tag and digest as docker and skopeo read them", () => {
  assert.deepEqual(parseOciRef("127.0.0.1:5000/test/debian:12"), {
    registry: "127.0.0.1:5000",
    name: "test/debian",
    tag: "12",
    digest: undefined,
  });
  assert.deepEqual(parseOciRef("geerlingguy/docker-debian12-ansible"), {
    registry: undefined,
    name: "geerlingguy/docker-debian12-ansible",
    tag: undefined,
    digest: undefined,
  });
  assert.equal(parseOciRef(`quay.io/x/y@sha256:${D}`)?.digest, `sha256:${D}`);
  assert.equal(parseOciRef("localhost/y:1")?.registry, "localhost");
  for (const bad of ["", "-x", "Debian:12", "a b", "x:", `x@sha256:${D.slice(1)}`, "../x", "x/../y"])
    assert.equal(parseOciRef(bad), undefined, bad);
});

test("OCI references: a digest is cached under it, a tag under the reference; the config refuses a bad one and a file image's keys", () => {
  assert.equal(ociImageFile(`quay.io/x/y@sha256:${D}`), `oci-sha256-${D}.squashfs`);
  assert.match(ociImageFile("127.0.0.1:5000/test/debian:12"), /^oci-debian-12-[0-9a-f]{12}\.squashfs$/);
  assert.notEqual(ociImageFile("a.io/x/debian:12"), ociImageFile("b.io/x/debian:12"));
  assert.equal(configSchema.safeParse({ image: { oci: "Bad Ref" } }).success, false);
  assert.equal(configSchema.safeParse({ image: { oci: "docker.io/library/debian:12" } }).success, true);
});
