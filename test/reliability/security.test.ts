// Security (issue 6): config strings cannot smuggle in shell syntax or escape their directories;
// nothing in the source runs a shell; state is root-only and private keys never leak into output,
// the journal or logs; the host's own firewall rules are untouched; pinned host keys are enforced.
import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { test } from "node:test";
import { parse, stringify } from "yaml";
import { assertNoResidue, labTest, ok, ownChainLab } from "../support/lab.js";
import { foreignRules, status } from "../support/lab-state.js";
import { skip, TestNamespace, tempDir } from "../support/ns.js";

const REPO = resolve(import.meta.dirname, "../../..");

// Shell metacharacters and path traversal, each alone.
const HOSTILE = [
  "x;touch pwn",
  "x$(touch pwn)",
  "x`touch pwn`",
  "x|touch pwn",
  "x&touch pwn",
  "x\ntouch pwn",
  "../../etc/x",
  "/etc/x",
  "a/b",
];

// Every string field of the config that is a name, a URL, an address or an enum, as a config.
const NAME_FIELDS: Record<string, (v: string) => Record<string, unknown>> = {
  lab: (v) => ({ lab: v }),
  "network.bridge": (v) => ({ network: { bridge: v } }),
  "network.address": (v) => ({ network: { address: v } }),
  "network.chain": (v) => ({ network: { chain: v } }),
  "image.url": (v) => ({ image: { url: v } }),
  "image.sha256": (v) => ({ image: { sha256: v } }),
  "image.checksums": (v) => ({ image: { checksums: v } }),
  "image.loopDevice": (v) => ({ image: { loopDevice: v } }),
  "image.build.suite": (v) => ({ image: { build: { suite: v } } }),
  "image.build.mirror": (v) => ({ image: { build: { mirror: v } } }),
  "image.build.packages.0": (v) => ({ image: { build: { packages: [v] } } }),
  "containers.prefix": (v) => ({ containers: { prefix: v } }),
  "containers.ipRange": (v) => ({ containers: { ipRange: [v, v] } }),
  "containers.init": (v) => ({ containers: { init: v } }),
  "containers.user": (v) => ({ containers: { user: v } }),
  "containers.group": (v) => ({ containers: { group: v } }),
  "inventory.format": (v) => ({ inventory: { format: v } }),
  "inventory.group": (v) => ({ inventory: { group: v } }),
};

// Deep merge of config fragments (objects only; arrays are replaced).
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      prev &&
      typeof prev === "object" &&
      !Array.isArray(prev) &&
      v &&
      typeof v === "object" &&
      !Array.isArray(v)
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

// The keys a config error names ("  - key: message" lines).
const namedKeys = (stderr: string) =>
  new Set([...stderr.matchAll(/^ {2}- ([\w.]+): /gm)].map((m) => m[1] ?? ""));

async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

test("hostile strings in every config field: exit 2 naming each key, nothing created", { skip }, async () => {
  const t = await tempDir("aplspawn-rsec-cfg-");
  const ns = await TestNamespace.create();
  try {
    await writeFile(join(t.path, "id"), "not a key\n");
    await writeFile(join(t.path, "id.pub"), "not a key\n");
    const before = await ns.snapshot();
    const base = {
      workdir: join(t.path, "work"),
      image: { url: `file://${t.path}/none.img` },
      containers: { machinesDir: join(t.path, "machines") },
    };
    // dryRun: a path that is wrongly accepted must not start a real lab (the default image would be
    // built); with --dry-run the run then only reports its plan, exit 0, and this test fails.
    const runs: { what: string; doc: Record<string, unknown>; keys: string[]; dryRun?: boolean }[] = [];
    // One config per hostile string with every name field set to it: each key must be named.
    for (const v of HOSTILE)
      runs.push({
        what: JSON.stringify(v),
        doc: Object.values(NAME_FIELDS).reduce<Record<string, unknown>>((d, f) => merge(d, f(v)), base),
        keys: Object.keys(NAME_FIELDS).flatMap((k) =>
          k === "containers.ipRange" ? [`${k}.0`, `${k}.1`] : [k],
        ),
      });
    // Paths, one field at a time: traversal and newlines are refused (a newline would also split
    // the inventory's lines). An existing key named through ".." is still a traversal.
    const pathFields: Record<string, (v: string) => Record<string, unknown>> = {
      workdir: (v) => ({ workdir: v }),
      "containers.machinesDir": (v) => ({ containers: { machinesDir: v } }),
      "containers.sshKey": (v) => ({ containers: { sshKey: v } }),
      "inventory.file": (v) => ({ inventory: { file: v } }),
    };
    for (const [key, f] of Object.entries(pathFields))
      for (const v of ["../../etc/x", `${t.path}/a/../../etc/x`, `${t.path}/work/../id`, `${t.path}/x\ny`])
        runs.push({
          what: `${key}: ${JSON.stringify(v)}`,
          doc: merge(base, f(v)),
          keys: [key],
          dryRun: true,
        });
    const cfg = join(t.path, "c.yaml");
    // Every run is judged; the problems are listed together at the end.
    const problems: string[] = [];
    for (const r of runs) {
      await writeFile(cfg, stringify(r.doc));
      const res = await ns.cli(["-c", cfg, "run", "up", ...(r.dryRun ? ["--dry-run"] : [])], { cwd: t.path });
      const named = namedKeys(res.stderr);
      const missing = r.keys.filter((k) => !named.has(k));
      if (res.exitCode !== 2)
        problems.push(`${r.what}: exit ${res.exitCode}, not 2: ${res.stderr.slice(0, 300)}`);
      else if (missing.length) problems.push(`${r.what}: ${missing.join(", ")} not named in: ${res.stderr}`);
      const files = await filesUnder(t.path);
      if (files.join() !== "c.yaml,id,id.pub")
        problems.push(`${r.what}: files were created: ${files.join(", ")}`);
    }
    assert.deepEqual(problems, [], "hostile config strings that were not refused");
    const after = await ns.snapshot();
    assert.deepEqual(after, before, "the namespace changed");
  } finally {
    await ns.destroy();
    await t.cleanup();
  }
});

// Ways to run a command through a shell from Node: any of these in aplspawn's code is a defect.
const SHELL_USES: [string, RegExp][] = [
  ["shell: true", /\bshell\s*:\s*(true|["'`])/],
  [
    "sh -c / bash -c",
    /["'`](\/bin\/|\/usr\/bin\/)?(ba|da|z)?sh["'`]\s*,\s*\[\s*["'`]-c["'`]|["'`](\/bin\/)?(ba)?sh -c\b/,
  ],
  [
    "child_process exec/execSync",
    /\b(execSync|execFileSync)\s*\(|import\s*\{[^}]*\bexec\b[^}]*\}\s*from\s*["'](node:)?child_process["']/,
  ],
  ["child_process.exec(", /child_process["']?\)?\.exec\s*\(|\bcp\.exec\s*\(/],
  ["execa's command string forms", /\bexecaCommand(Sync)?\b|(^|[\s=(,])\$`/],
];

async function sources(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }))
    .map(String)
    .filter((f) => /\.(ts|mts|js|mjs)$/.test(f))
    .map((f) => join(dir, f));
}

test("no shell: nothing in src/, tasks/ or workflows/ runs a command through a shell", async () => {
  // The patterns themselves must catch what they are for (else this test could never fail).
  for (const [what, re] of SHELL_USES) {
    const sample = {
      "shell: true": "execa(cmd, args, { shell: true })",
      "sh -c / bash -c": 'h.exec("sh", ["-c", line])',
      "child_process exec/execSync": 'import { exec } from "node:child_process";',
      "child_process.exec(": 'require("child_process").exec("ls")',
      "execa's command string forms": "await $`ls -l`",
    }[what];
    assert.ok(sample && re.test(sample), `the pattern for ${what} misses ${sample}`);
  }
  const found: string[] = [];
  for (const d of ["src", "tasks", "workflows"])
    for (const f of await sources(join(REPO, d))) {
      const text = await readFile(f, "utf8");
      for (const [what, re] of SHELL_USES)
        for (const [i, line] of text.split("\n").entries())
          if (re.test(line)) found.push(`${relative(REPO, f)}:${i + 1}: ${what}: ${line.trim()}`);
    }
  assert.deepEqual(found, [], "shell uses found");
  assert.ok((await sources(join(REPO, "tasks"))).length > 10, "the scan saw the tasks");
});

// Every base64 line of a PEM/OpenSSH private key: none may appear anywhere it was not written to.
async function secretLines(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  const lines = text.split("\n").filter((l) => l && !l.startsWith("-----"));
  assert.ok(lines.length >= 3, `${file} holds a private key`);
  return lines;
}

labTest(
  "a lab with hostile paths: no shell runs them; state root-only, keys never leak, host firewall untouched, host keys pinned",
  ownChainLab("rsec", 75),
  async (lab) => {
    // Paths full of shell syntax (no spaces: overlayfs options cannot hold them). Run through a
    // shell anywhere, they would create pwn* files in the working directory. The workdir's is
    // shorter: Ansible's master sockets live under it and a socket path has at most 107 bytes.
    const weird = "w;id>pwn1$(id>pwn2)`id>pwn3`|id>pwn4&id>pwn5";
    const workdir = join(lab.dir, "w;id>pwn6`id>pwn7`$(id>pwn8)");
    const doc = parse(await readFile(lab.config, "utf8")) as Record<string, Record<string, unknown>>;
    doc.workdir = workdir as never;
    (doc.containers as Record<string, unknown>).machinesDir = join(lab.dir, `m${weird}`);
    (doc.inventory as Record<string, unknown>).file = join(lab.dir, `inv${weird}.txt`);
    await writeFile(lab.config, stringify(doc));
    const labDir = join(workdir, "rsec");
    const merged = (n: string) => join(lab.dir, `m${weird}`, n);
    const inventory = join(lab.dir, `inv${weird}.txt`);

    // The host's own rules, before aplspawn: one in FORWARD, one in nat POSTROUTING.
    ok(await lab.ns.run("iptables", ["-w", "-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP"]), "own rule");
    ok(
      await lab.ns.run("iptables", [
        "-w",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "192.0.2.0/24",
        "-j",
        "RETURN",
      ]),
      "own nat rule",
    );
    lab.before = await lab.ns.snapshot();
    const foreignBefore = await foreignRules(lab, ["RSEC"]);
    assert.match(foreignBefore, /-A FORWARD -s 192\.0\.2\.0\/24 -j DROP/);
    assert.match(foreignBefore, /-A POSTROUTING -s 192\.0\.2\.0\/24 -j RETURN/);

    const outputs: [string, string][] = [];
    const keep = (what: string, r: { stdout: string; stderr: string }) => {
      outputs.push([what, `${r.stdout}\n${r.stderr}`]);
      return r;
    };
    keep("run up --json", ok(await lab.cli(["--json", "run", "up"]), "run up"));
    keep("run up", ok(await lab.cli(["run", "up"]), "run up again"));
    assert.deepEqual(
      (await readdir(lab.dir)).filter((f) => f.startsWith("pwn")),
      [],
      "a path was run through a shell",
    );
    assert.equal(
      await foreignRules(lab, ["RSEC"]),
      foreignBefore,
      "the host's rules changed while the lab is up",
    );

    // (b) Root-only state.
    const mode = async (p: string) => {
      const s = await stat(p);
      assert.equal(s.uid, 0, `${p} is owned by root`);
      return (s.mode & 0o777).toString(8);
    };
    assert.equal(await mode(labDir), "700", "the lab directory");
    assert.equal(await mode(join(labDir, "id_ed25519")), "600", "the lab key");
    assert.equal(await mode(join(labDir, "journal.jsonl")), "600", "the journal");
    const hostKeys = ["rsec-10", "rsec-11"].map((n) => join(labDir, "containers", n, "ssh_host_ed25519_key"));
    for (const k of hostKeys) assert.equal(await mode(k), "600", k);

    const st = await lab.cli(["--json", "status"]);
    assert.equal(st.exitCode, 0, st.stdout);
    keep("status --json", st);
    keep("status", ok(await lab.cli(["status"]), "status"));
    keep("inventory", ok(await lab.cli(["inventory"]), "inventory"));
    keep("inventory --json", ok(await lab.cli(["--json", "inventory"]), "inventory --json"));
    keep("pids", ok(await lab.cli(["pids"]), "pids"));
    outputs.push(["the journal", await readFile(join(labDir, "journal.jsonl"), "utf8")]);
    outputs.push(["the inventory", await readFile(inventory, "utf8")]);
    for (const n of ["rsec-10", "rsec-11"])
      outputs.push([
        `${n}'s nspawn log`,
        await readFile(join(labDir, "containers", n, "nspawn.log"), "utf8"),
      ]);

    // (d) Host keys are pinned: rsec-10 now serves another key; ssh and Ansible refuse it.
    const fake = join(lab.dir, "fake_host_key");
    ok(await lab.ns.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", fake]), "ssh-keygen");
    for (const s of ["", ".pub"])
      ok(
        await lab.ns.run("cp", [`${fake}${s}`, `${merged("rsec-10")}/etc/ssh/ssh_host_ed25519_key${s}`]),
        "cp",
      );
    ok(await lab.cli(["exec", "rsec-10", "--", "systemctl", "restart", "ssh"]), "restart sshd");
    const pinned = (await status(lab)).checks.filter((c) => c.name.includes("pinned host key") && !c.ok);
    assert.deepEqual(
      pinned.map((c) => c.target),
      ["rsec-10"],
      "status sees the changed host key",
    );
    const refused = await lab.cli(["ssh", "rsec-10", "--", "true"]);
    assert.notEqual(refused.exitCode, 0, "ssh to a container with a changed host key is refused");
    assert.match(refused.stderr, /Host key verification failed/);
    ok(await lab.cli(["ssh", "rsec-11", "--", "true"]), "ssh to the other container");
    const ansible = (host: string) =>
      lab.ns.run("ansible", ["-i", inventory, "-m", "ping", host], {
        cwd: lab.dir,
        env: { ANSIBLE_NOCOLOR: "1" },
      });
    const a10 = await ansible("rsec-10");
    assert.notEqual(a10.exitCode, 0, `ansible reached rsec-10:\n${a10.stdout}`);
    assert.match(`${a10.stdout}\n${a10.stderr}`, /Host key verification failed/);
    // Even where the user's Ansible turns host key checking off (ansible.cfg or environment).
    await writeFile(join(lab.dir, "ansible.cfg"), "[defaults]\nhost_key_checking = False\n");
    const lax = await lab.ns.run("ansible", ["-i", inventory, "-m", "ping", "rsec-10"], {
      cwd: lab.dir,
      env: {
        ANSIBLE_NOCOLOR: "1",
        ANSIBLE_HOST_KEY_CHECKING: "False",
        ANSIBLE_CONFIG: join(lab.dir, "ansible.cfg"),
      },
    });
    assert.notEqual(
      lax.exitCode,
      0,
      `ansible with host_key_checking = False reached rsec-10:\n${lax.stdout}`,
    );
    assert.match(
      `${lax.stdout}\n${lax.stderr}`,
      /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/,
    );
    const a11 = await ansible("rsec-11");
    assert.equal(a11.exitCode, 0, `ansible could not reach rsec-11:\n${a11.stdout}\n${a11.stderr}`);
    assert.match(a11.stdout, /rsec-11 \| SUCCESS/);

    keep("run down", ok(await lab.cli(["run", "down"]), "run down"));
    keep("run down --json", ok(await lab.cli(["--json", "run", "down"]), "second run down"));
    assert.equal(
      outputs.at(-2)?.[1].includes("[ DONE ]"),
      true,
      `run down finished:\n${outputs.at(-2)?.[1]}`,
    );
    outputs.push(["the journal after down", await readFile(join(labDir, "journal.jsonl"), "utf8")]);
    await assertNoResidue(lab, "after run down");
    assert.equal(await foreignRules(lab, ["RSEC"]), foreignBefore, "the host's rules changed after down");

    const secrets = [join(labDir, "id_ed25519"), ...hostKeys];
    for (const k of secrets) {
      const lines = await secretLines(k);
      for (const [what, text] of outputs)
        for (const l of lines) assert.ok(!text.includes(l), `a line of ${k} appears in ${what}`);
    }
    assert.deepEqual(
      (await readdir(lab.dir)).filter((f) => f.startsWith("pwn")),
      [],
      "a path was run through a shell",
    );
  },
);
