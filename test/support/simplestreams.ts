// Image-server images for the real tests: the test image's root squashfs as a file of its own (cut
// out of the cached GPT test image once, kept in TEST_CACHE keyed by the image's digest), and a
// simplestreams tree (streams/v1/index.json, streams/v1/images.json, the squashfs) laid out as an
// Incus image server lays it out, for the test HTTP server to serve.
import { createHash } from "node:crypto";
import { copyFile, mkdir, open, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { ensureTestImage, TEST_CACHE } from "./image.js";

/** Where the built image's squashfs starts (diskGeometry: 1 MiB of GPT before the partition). */
const ROOT_OFFSET = 1024 * 1024;

let memo: Promise<{ path: string; sha256: string; size: number }> | undefined;

/** The test image's root squashfs alone (its bytes_used, rounded up to 4 KiB as mksquashfs pads). */
export function ensureTestRootSquashfs(): Promise<{ path: string; sha256: string; size: number }> {
  memo ??= cutSquashfs();
  return memo;
}

async function cutSquashfs(): Promise<{ path: string; sha256: string; size: number }> {
  const image = await ensureTestImage();
  const final = join(TEST_CACHE, `incus-root-${image.sha256.slice(0, 16)}.squashfs`);
  const f = await open(image.path, "r");
  let bytes: Buffer;
  try {
    const sb = Buffer.alloc(96);
    await f.read(sb, 0, sb.length, ROOT_OFFSET);
    if (sb.readUInt32LE(0) !== 0x73717368) throw new Error(`${image.path}: no squashfs at 1 MiB`);
    const used = Number(sb.readBigUInt64LE(40));
    bytes = Buffer.alloc(Math.ceil(used / 4096) * 4096);
    await f.read(bytes, 0, bytes.length, ROOT_OFFSET);
  } finally {
    await f.close();
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if ((await stat(final).catch(() => undefined))?.size !== bytes.length) {
    const tmp = `${final}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, final);
  }
  return { path: final, sha256, size: bytes.length };
}

/** One product of the tree: an alias, and its versions' items. */
export interface TestProduct {
  id: string;
  aliases: string;
  arch: string;
  versions: Record<string, Record<string, { ftype: string; path: string; sha256: string; size: number }>>;
}

/**
 * Lay out a simplestreams tree in `dir`: index.json naming streams/v1/images.json, that products
 * file, and `files` (relative path → a file to link there, or its content).
 */
export async function publishStream(
  dir: string,
  products: TestProduct[],
  files: Record<string, string | { link: string } | { copy: string }>,
): Promise<void> {
  const index = {
    format: "index:1.0",
    index: {
      images: {
        datatype: "image-downloads",
        path: "streams/v1/images.json",
        format: "products:1.0",
        products: products.map((p) => p.id),
      },
    },
  };
  const doc = {
    content_id: "images",
    datatype: "image-downloads",
    format: "products:1.0",
    products: Object.fromEntries(
      products.map((p) => [
        p.id,
        {
          aliases: p.aliases,
          arch: p.arch,
          os: "Debian",
          release: "bookworm",
          release_title: "12",
          versions: Object.fromEntries(Object.entries(p.versions).map(([v, items]) => [v, { items }])),
        },
      ]),
    ),
  };
  await mkdir(join(dir, "streams/v1"), { recursive: true });
  await writeFile(join(dir, "streams/v1/index.json"), JSON.stringify(index));
  await writeFile(join(dir, "streams/v1/images.json"), JSON.stringify(doc));
  for (const [rel, what] of Object.entries(files)) {
    const to = join(dir, rel);
    await mkdir(dirname(to), { recursive: true });
    await rm(to, { force: true });
    if (typeof what === "string") await writeFile(to, what);
    else if ("link" in what) await symlink(what.link, to);
    else await copyFile(what.copy, to);
  }
}

/**
 * A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem), for the test server's
 * https; `trust` is the environment a CLI run needs to trust it.
 */
export async function loopbackCertificate(
  dir: string,
): Promise<{ cert: string; key: string; trust: Record<string, string> }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await execa("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
    ...["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
  ]);
  return { cert, key, trust: { NODE_EXTRA_CA_CERTS: cert } };
}
