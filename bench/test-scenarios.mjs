// `aplspawn test` of N scenarios (one container each, an idempotent converge) side by side
// (`test --all`) against one after the other (`test -c` each in turn), in a private namespace on
// the cached test image (the labs' fixture of the real tests). Needs root and `npm run build`.
// Usage: node bench/test-scenarios.mjs [--n 2] [--runs 1]
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { ok, playbook, withLab } from "../dist/test/support/lab.js";

const { values } = parseArgs({
  options: { n: { type: "string", default: "2" }, runs: { type: "string", default: "1" } },
});
const n = Number(values.n);
const runs = Number(values.runs);
const secs = (ms) => (ms / 1000).toFixed(1);

await withLab(
  "bts",
  74,
  async (lab) => {
    const converge = await lab.file(
      "converge.yml",
      playbook('    - ansible.builtin.copy: { dest: /etc/motd, content: "hi\\n" }\n', { facts: false }),
    );
    const files = [];
    for (let i = 0; i < n; i++) {
      const dir = join(lab.dir, "scenarios", `s${i + 1}`);
      await mkdir(dir, { recursive: true });
      const file = join(dir, "aplspawn.yaml");
      await writeFile(
        file,
        stringify({
          // Named, and its inventory beside it, as --all would pick them: `-c` alone runs the same lab.
          lab: `s${i + 1}`,
          inventory: { file: join(dir, "inventory.txt") },
          workdir: lab.workdir,
          image: { url: `file://${lab.image.path}` },
          containers: { count: 1, machinesDir: lab.machinesDir, readyTimeout: 90 },
          provision: { playbook: converge, idempotence: true },
        }),
      );
      files.push(file);
    }
    const run = async (args) => {
      const t = performance.now();
      ok(await lab.ns.cli(args, { cwd: lab.dir }), args.join(" "));
      return performance.now() - t;
    };
    // A first run of each, not measured: the same names and state for every measured one.
    await run(["test", "--all"]);
    for (let r = 0; r < runs; r++) {
      const together = await run(["test", "--all"]);
      let apart = 0;
      for (const f of files) apart += await run(["-c", f, "test"]);
      console.log(
        `N=${n}: side by side ${secs(together)} s, one after the other ${secs(apart)} s, ${(apart / together).toFixed(2)}×`,
      );
    }
  },
  { containers: { count: 1 } },
);
