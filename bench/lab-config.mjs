// The config of a bench lab of n containers on the cached test image, in its own namespace (so the
// same bridge, chain and subnet serve every lab), its machines and inventory under `dir`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { TestNamespace } from "../dist/test/support/ns.js";

export function benchLabConfig({ lab, store, dir, image, n, bridge, chain, containers = {} }) {
  return stringify({
    lab,
    workdir: store,
    network: { bridge, address: "10.10.0.1/16", chain },
    image: { url: `file://${image.path}`, sha256: image.sha256 },
    containers: {
      count: n,
      ipRange: ["10.10.1.1", "10.10.1.250"],
      machinesDir: join(dir, "machines"),
      concurrency: n,
      ...containers,
    },
    inventory: { file: join(dir, "inventory.txt"), ping: false },
  });
}

// The median of a list of numbers (the bench scripts' summary).
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// A bench lab's end: its namespace (bridge, rules, mounts) and what it left in dir and the store.
export async function endBenchLab(ns, { dir, store, lab }) {
  await ns.destroy();
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(store, lab), { recursive: true, force: true });
}

// fn({ ns, cfg, dir }) on a fresh bench lab (benchLabConfig's options, in a namespace of its own, its
// config written to dir/lab.yaml), ended with endBenchLab whatever fn does.
export async function withBenchLab(o, fn) {
  const dir = mkdtempSync(join(tmpdir(), `aplspawn-${o.lab}-`));
  const ns = await TestNamespace.create();
  try {
    const cfg = join(dir, "lab.yaml");
    writeFileSync(cfg, benchLabConfig({ ...o, dir }));
    return await fn({ ns, cfg, dir });
  } finally {
    await endBenchLab(ns, { dir, store: o.store, lab: o.lab });
  }
}
