// `aplspawn test --reuse-prepare` against `aplspawn test`, on one scenario of C containers whose
// provision.prepare does the kind of work a prepare does (users, directories, files, a package
// cache's worth of small files), in a private namespace on the cached test image (the labs' fixture
// of the real tests). Plain runs first (each purges the kept state), then one --reuse-prepare run
// that keeps it (not measured), then the measured --reuse-prepare runs, which start from it.
// Prints each run, the medians, and the steps' times from the JUnit report.
// Needs root and `npm run build`. Usage: node bench/test-reuse.mjs [--containers 2] [--runs 3]
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ok, playbook, withLab } from "../dist/test/support/lab.js";

const { values } = parseArgs({
  options: { containers: { type: "string", default: "2" }, runs: { type: "string", default: "3" } },
});
const count = Number(values.containers);
const runs = Number(values.runs);
const secs = (ms) => (ms / 1000).toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await withLab(
  "btr",
  75,
  async (lab) => {
    const prepare = await lab.file(
      "prepare.yml",
      playbook(
        [
          "    - ansible.builtin.user: { name: 'svc{{ item }}', create_home: true }\n      loop: [1, 2, 3, 4, 5, 6]\n",
          "    - ansible.builtin.file: { path: '/srv/app/{{ item }}', state: directory, mode: '0755' }\n      loop: [a, b, c, d, e, f, g, h]\n",
          "    - ansible.builtin.copy: { dest: '/srv/app/{{ item }}/config', content: 'setting={{ item }}\\n' }\n      loop: [a, b, c, d, e, f, g, h]\n",
          "    - ansible.builtin.shell: for i in $(seq 1 2000); do head -c 4096 /dev/urandom > /var/cache/blob.$i; done\n      args: { creates: /var/cache/blob.2000 }\n",
        ].join(""),
      ),
    );
    const converge = await lab.file(
      "converge.yml",
      playbook('    - ansible.builtin.copy: { dest: /etc/motd, content: "hi\\n" }\n', { facts: false }),
    );
    await lab.writeConfig({ provision: { playbook: converge, prepare, idempotence: true } });
    const junit = join(lab.dir, "report.xml");
    const steps = async () => {
      const xml = await readFile(junit, "utf8");
      return Object.fromEntries(
        [...xml.matchAll(/<testcase name="([^"]+)"[^>]*time="([\d.]+)"/g)].map((m) => [m[1], Number(m[2])]),
      );
    };
    const run = async (args) => {
      const t = performance.now();
      ok(await lab.cli([...args, "--junit", junit]), args.join(" "));
      return { ms: performance.now() - t, steps: await steps() };
    };
    const plain = [];
    const reused = [];
    for (let r = 0; r < runs; r++) plain.push(await run(["test"]));
    await run(["test", "--reuse-prepare"]);
    for (let r = 0; r < runs; r++) reused.push(await run(["test", "--reuse-prepare"]));
    const show = (what, xs) => {
      for (const x of xs)
        console.log(
          `${what}: ${secs(x.ms)} s (${Object.entries(x.steps)
            .map(([k, v]) => `${k} ${v.toFixed(1)}`)
            .join(", ")})`,
        );
    };
    show("test", plain);
    show("test --reuse-prepare", reused);
    const p = median(plain.map((x) => x.ms));
    const q = median(reused.map((x) => x.ms));
    console.log(
      `C=${count}, medians of ${runs}: test ${secs(p)} s, test --reuse-prepare ${secs(q)} s, ${(p / q).toFixed(2)}× faster; prepare ${median(plain.map((x) => x.steps.prepare ?? 0)).toFixed(1)} s against its reuse ${median(reused.map((x) => x.steps.prepare ?? 0)).toFixed(1)} s`,
    );
  },
  { containers: { count } },
);
