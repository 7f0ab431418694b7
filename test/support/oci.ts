// OCI images for the real tests: the cached test image as an OCI layout (made once with unsquashfs
// and umoci, cached in TEST_CACHE keyed by the image's digest), and a real registry (Debian's
// docker-registry) on the loopback of a test's namespace, with skopeo to push to it.
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { stringify } from "yaml";
import { ensureTestImage, sh, TEST_CACHE } from "./image.js";
import type { TestNamespace } from "./ns.js";

/** Where the built image's squashfs starts (diskGeometry: 1 MiB of GPT before the partition). */
const ROOT_OFFSET = 1024 * 1024;

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

const memo = new Map<string, Promise<string>>();

/**
 * The test image as an OCI image layout with one tag, "test" (one layer: the whole tree). Made once
 * per test image and kept in TEST_CACHE; returns the layout directory.
 */
export function ensureTestOciLayout(): Promise<string> {
  const key = "test";
  let p = memo.get(key);
  if (!p) {
    p = makeLayout();
    memo.set(key, p);
  }
  return p;
}

async function makeLayout(): Promise<string> {
  const image = await ensureTestImage();
  const final = join(TEST_CACHE, `oci-${image.sha256.slice(0, 16)}`);
  if (await exists(join(final, "index.json"))) return final;
  const work = await mkdtemp(join(TEST_CACHE, ".oci-build-"));
  try {
    const layout = join(work, "layout");
    const bundle = join(work, "bundle");
    await sh("umoci", ["init", "--layout", layout]);
    await sh("umoci", ["new", "--image", `${layout}:test`]);
    await sh("umoci", ["unpack", "--image", `${layout}:test`, bundle]);
    await rm(join(bundle, "rootfs"), { recursive: true });
    await sh("unsquashfs", [
      "-no-progress",
      "-o",
      String(ROOT_OFFSET),
      "-d",
      join(bundle, "rootfs"),
      image.path,
    ]);
    await sh("umoci", ["repack", "--image", `${layout}:test`, bundle]);
    await rename(layout, final).catch(async (e: NodeJS.ErrnoException) => {
      // Another test process made it meanwhile: theirs is as good.
      if (!(await exists(join(final, "index.json")))) throw e;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return final;
}

/** A registry running in a test's namespace on 127.0.0.1:port, storing under `dir`. */
export interface TestRegistry {
  host: string;
  /** Where the registry keeps blobs: docker/registry/v2/blobs/sha256/<2>/<digest>/data. */
  storage: string;
  /** The requests it logged ("GET /v2/…"), in order. */
  requests: string[];
  /** Push an OCI layout's tag as NAME:TAG with skopeo (inside the namespace, over plain http). */
  push(layout: string, tag: string, ref: string): Promise<void>;
  stop(): Promise<void>;
}

/** Start Debian's docker-registry in the namespace, on loopback only, over plain http. */
export async function startRegistry(ns: TestNamespace, dir: string, port = 5000): Promise<TestRegistry> {
  const storage = join(dir, "registry");
  const config = join(dir, "registry.yml");
  await writeFile(
    config,
    stringify({
      version: 0.1,
      log: { level: "info", accesslog: { disabled: false } },
      storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true } },
      http: { addr: `127.0.0.1:${port}` },
    }),
  );
  const child: ChildProcess = ns.spawn("docker-registry", ["serve", config]);
  const requests: string[] = [];
  for (const s of [child.stdout!, child.stderr!])
    createInterface({ input: s }).on("line", (l) => {
      const m = /"(GET|HEAD|PUT|POST|PATCH|DELETE) (\/v2\/[^ "]*)/.exec(l);
      if (m) requests.push(`${m[1]} ${m[2]}`);
    });
  const host = `127.0.0.1:${port}`;
  const reg: TestRegistry = {
    host,
    storage,
    requests,
    async push(layout, tag, ref) {
      let last = "";
      // The registry takes a moment to listen: skopeo is retried until it is up.
      for (let i = 0; i < 50; i++) {
        const r = await ns.run("skopeo", [
          "copy",
          "--dest-tls-verify=false",
          `oci:${layout}:${tag}`,
          `docker://${host}/${ref}`,
        ]);
        if (r.exitCode === 0) return;
        last = r.stderr;
        if (child.exitCode !== null) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new Error(`skopeo could not push to the test registry: ${last}`);
    },
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
    },
  };
  return reg;
}
