// profile run up / down of N containers with --json events
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

const W = "/work/wt-b33";
const { ensureTestImage } = await import(`${W}/dist/test/support/image.js`);
const { TestNamespace } = await import(`${W}/dist/test/support/ns.js`);
const n = Number(process.argv[2] ?? 1);
const boot = process.argv[3];
const image = await ensureTestImage();
const store = process.env.STORE ?? mkdtempSync(join(tmpdir(), "aplspawn-b33store-"));
const dir = mkdtempSync(join(tmpdir(), "aplspawn-b33-"));
const ns = await TestNamespace.create();
const cfg = join(dir, "lab.yaml");
writeFileSync(
  cfg,
  stringify({
    lab: "b33p",
    workdir: store,
    network: { bridge: "bnbr0", address: "10.10.0.1/16", chain: "BENCH" },
    image: { url: `file://${image.path}`, sha256: image.sha256 },
    containers: {
      count: n,
      ipRange: ["10.10.1.1", "10.10.1.250"],
      machinesDir: join(dir, "machines"),
      concurrency: n,
      ...(boot ? { boot } : {}),
    },
    inventory: { file: join(dir, "inventory.txt"), ping: false },
  }),
);
const run = async (...a) => {
  const t0 = performance.now();
  const r = await ns.cli(["--json", "-c", cfg, ...a]);
  const ms = performance.now() - t0;
  if (r.exitCode) console.log(r.stdout, r.stderr);
  return { ms, out: r.stdout };
};
try {
  for (const round of [0, 1, 2].slice(0, Number(process.env.ROUNDS ?? 2))) {
    for (const w of ["up", "down"]) {
      const r = await run("run", w);
      console.log(`== ${w} ${r.ms | 0} ms`);
      if (process.env.EV) writeFileSync(`/tmp/b33/ev-${w}-${round}.jsonl`, r.out);
    }
  }
} finally {
  await ns.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (!process.env.STORE) rmSync(store, { recursive: true, force: true });
}
