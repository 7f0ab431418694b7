// The contract between the task registry and the journal: every kind with a rollback declares the
// shapes of what it journals, and those shapes take what the workflows really journal.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { test } from "node:test";
import { parse, stringify } from "yaml";
import { containerSpecs } from "../../config/containers.js";
import { parseConfig } from "../../config/load.js";
import type { Config } from "../../config/schema.js";
import { UsageError } from "../../src/errors.js";
import type { Step, TaskStep, Workflow } from "../../src/runner/task.js";
import { taskRegistry } from "../../tasks/index.js";
import { imageBuildStep } from "../../workflows/getimage.js";
import { workflows } from "../../workflows/index.js";

// The config variants whose workflows, between them, build every kind with a rollback: the packaged
// default, and variants that turn the options aplspawn journals (another image source, privateUsers,
// init, nat, a pinned loop device, an OCI image, an image server's, a lab across hosts, …).
async function configs(): Promise<Config[]> {
  const file = resolve(import.meta.dirname, "../../../config/aplspawn.yaml");
  const text = await readFile(file, "utf8");
  const other = parse(text) as Record<string, Record<string, unknown>>;
  Object.assign(other.network ?? {}, { nat: false });
  Object.assign(other.containers ?? {}, { privateUsers: true, init: "script", count: 2 });
  Object.assign(other.inventory ?? {}, { format: "yaml" });
  const url = "https://images.example/debian.img";
  other.image = {
    url,
    checksums: "https://images.example/SHA256SUMS",
    checksumsKeyring: "/etc/aplspawn/keyring.gpg",
    maxSize: 1024 ** 3,
    loopDevice: "/dev/loop6",
  };
  const pinned = { ...other, image: { url, sha256: "a".repeat(64) } };
  const oci = { ...other, image: { oci: "127.0.0.1:5000/debian:bookworm", insecure: true } };
  const server = { ...other, image: { server: "https://images.example", alias: "debian/12" } };
  // A lab across hosts (its inventory is read when the run starts, not when the workflow is built).
  const cluster = { ...(parse(text) as object), cluster: { inventory: "/nonexistent/hosts.ini" } };
  return [
    parseConfig(text, file),
    ...[other, pinned, oci, server, cluster].map((o) => parseConfig(stringify(o), "variant.yaml")),
  ];
}

test("every kind with a rollback declares the shapes it journals: params, and an intent where it prepares one", () => {
  const withRollback = [...taskRegistry().values()].filter((d) => d.rollback);
  assert.ok(withRollback.length > 15, `${withRollback.length} kinds with a rollback`);
  for (const d of withRollback) {
    assert.ok(d.journaled?.params, `${d.kind} declares journaled.params`);
    assert.equal(!!d.journaled.intent, !!d.prepare, `${d.kind}: an intent shape exactly when it has prepare`);
  }
});

// What run and prepare return is typed by the result and intent shapes (their types are z.infer of
// them), so the compiler holds those to their shapes; params come from the workflows, checked here
// as the journal holds them: through JSON.
test("each kind's params shape takes, unchanged, what the workflows journal for it", async () => {
  const registry = taskRegistry();
  const seen = new Set<string>();
  const check = (s: TaskStep, where: string) => {
    const def = registry.get(s.def.kind);
    assert.equal(def, s.def, `${s.def.kind} is the registry's`);
    if (!def?.rollback) return;
    seen.add(def.kind);
    const journaled: unknown = JSON.parse(JSON.stringify(s.params));
    const r = def.journaled?.params.safeParse(journaled);
    assert.ok(
      r?.success,
      `${where} ${s.id}: ${r && !r.success ? JSON.stringify(r.error.issues) : "no shape"}`,
    );
    assert.deepEqual(r.data, journaled, `${where} ${s.id}: the shape names every field journaled`);
  };
  const walk = (steps: readonly Step[], where: string) => {
    for (const s of steps)
      if (s.type === "task") check(s, where);
      else if (s.type === "group") walk(s.steps, where);
  };
  for (const c of await configs()) {
    const first = containerSpecs(c)[0]?.name ?? "";
    for (const [name, w] of Object.entries(workflows))
      for (const o of [
        {},
        { purge: true },
        { only: [first] },
        { owner: { name: "alice", uid: 1000, gid: 1000, home: "/home/alice" } },
      ]) {
        if (Object.keys(o).some((k) => !w.options.includes(k as keyof typeof o))) continue; // refused by the CLI
        let wf: Workflow;
        try {
          wf = (await w.load())(c, o);
        } catch (e) {
          if (e instanceof UsageError) continue; // an option that workflow refuses
          throw e;
        }
        walk(wf.steps, `${c.lab} ${name} ${JSON.stringify(o)}`);
      }
    // `aplspawn snapshot save|restore|delete NAME [--only …]` (refused with containers.privateUsers).
    const snapshots = await import("../../workflows/snapshot.js");
    for (const [name, build] of Object.entries(snapshots))
      for (const o of [{ snapshot: "s1" }, { snapshot: "s1", only: [first] }]) {
        if (c.containers.privateUsers) continue;
        walk(build(c, o).steps, `${c.lab} ${name} ${JSON.stringify(o)}`);
      }
    // `aplspawn image build --rootfs DIR --force`.
    if (c.image.build) walk([imageBuildStep(c, { rootfs: "/srv/rootfs", force: true })], "image build");
  }
  const missing = [...registry.values()].filter((d) => d.rollback && !seen.has(d.kind)).map((d) => d.kind);
  assert.deepEqual(missing, [], "every kind with a rollback is built by some workflow here");
});
