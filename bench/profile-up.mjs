// Where the time of a small `run up` goes: runs `run up --json` of N containers (fresh lab each
// time, on the cached test image, in a private namespace), then prints each task's median duration
// and the wall time not spent in any task (the runner, start-up, journal). Run as root.
//
//   node bench/profile-up.mjs --n 1 --runs 5 [--init script]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureTestImage } from "../dist/test/support/image.js";
import { CLI, TestNamespace } from "../dist/test/support/ns.js";
import { benchLabConfig, endBenchLab, median } from "./lab-config.mjs";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "1" },
    runs: { type: "string", default: "5" },
    init: { type: "string", default: "boot" },
    // Also time `run up` on a terminal (a pty, the default renderer) in place of --json.
    tty: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const runs = Number(values.runs);
const image = await ensureTestImage();
const store = mkdtempSync(join(tmpdir(), "aplspawn-profile-store-"));
const byKind = new Map();
const walls = [];
try {
  for (let i = 0; i <= runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), "aplspawn-profile-"));
    const ns = await TestNamespace.create();
    const lab = `prof${i}`;
    try {
      const cfg = join(dir, "lab.yaml");
      writeFileSync(
        cfg,
        benchLabConfig({
          lab,
          store,
          dir,
          image,
          n,
          bridge: "pfbr0",
          chain: "PROF",
          containers: { init: values.init },
        }),
      );
      const t0 = performance.now();
      const r = values.tty
        ? await ns.run("script", ["-qec", `${process.execPath} ${CLI} -c ${cfg} run up`, "/dev/null"], {
            env: { TERM: "xterm-256color", CI: "" },
          })
        : await ns.cli(["-c", cfg, "--json", "run", "up"]);
      const wall = performance.now() - t0;
      if (r.exitCode !== 0) throw new Error(`run up failed:\n${r.stdout}\n${r.stderr}`);
      await ns.cli(["-c", cfg, "run", "down"]);
      // The first run is a warm-up (it verifies the image once).
      if (i === 0) continue;
      walls.push(wall);
      const events = r.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .filter((e) => e.event === "task" && e.durationMs !== undefined);
      const seen = new Map();
      for (const e of events) {
        const kind = e.id.replace(/\[.*$/, "");
        seen.set(kind, (seen.get(kind) ?? 0) + e.durationMs);
      }
      for (const [k, ms] of seen) byKind.set(k, [...(byKind.get(k) ?? []), ms]);
    } finally {
      await endBenchLab(ns, { dir, store, lab });
    }
  }
} finally {
  rmSync(store, { recursive: true, force: true });
}
const rows = [...byKind].map(([k, xs]) => [k, median(xs)]).sort((a, b) => b[1] - a[1]);
const wall = median(walls);
console.log(`run up of ${n}: median wall ${wall.toFixed(0)} ms over ${walls.length} runs`);
for (const [k, ms] of rows)
  console.log(`${ms.toFixed(0).padStart(7)} ms  ${((100 * ms) / wall).toFixed(1).padStart(5)}%  ${k}`);
const sum = rows.reduce((a, [, ms]) => a + ms, 0);
console.log(`${sum.toFixed(0).padStart(7)} ms  sum of tasks (concurrent tasks overlap)`);
