// Shell completion: what `aplspawn __complete` answers (commands, workflows, options, container
// and set names from the lab's config, --only lists, ssh's USER@NAME, files), and the bash, zsh and
// fish scripts, loaded for real: bash completes a container name through its own complete -F.
import assert from "node:assert/strict";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { runMain } from "../support/main-io.js";
import { CLI, tempDir } from "../support/ns.js";

const CONFIG = `workdir: /nonexistent/w
containers:
  machinesDir: /nonexistent/m
  sets:
    - {name: web, count: 2}
    - {name: db}
`;

async function complete(config: string, words: string[]): Promise<string[]> {
  const { code, out, err } = await runMain(["__complete", "--", "-c", config, ...words]);
  assert.equal(code, 0, err);
  return out.split("\n").filter(Boolean);
}

test("__complete: commands, workflows, options, choices, container and set names, --only lists, USER@NAME, files", async () => {
  const d = await tempDir();
  try {
    const c = join(d.path, "lab.yaml");
    await writeFile(c, CONFIG);
    assert.deepEqual(await complete(c, ["st"]), ["status"]);
    assert.deepEqual(await complete(c, ["run", ""]), [
      "up",
      "down",
      "netup",
      "netdown",
      "getimage",
      "spawn",
      "stop",
      "provision",
      "reset",
      "cleanup",
    ]);
    assert.deepEqual(await complete(c, ["run", "up", "--o"]), ["--only", "--owner", "--operation"]);
    assert.deepEqual(await complete(c, ["run", "stop", "--only", ""]), ["web1", "web2", "db1", "web", "db"]);
    assert.deepEqual(await complete(c, ["run", "stop", "--only", "web1,w"]), ["web1,web2", "web1,web"]);
    assert.deepEqual(await complete(c, ["ssh", "w"]), ["web1", "web2"]);
    assert.deepEqual(await complete(c, ["ssh", "root@d"]), ["root@db1"]);
    assert.deepEqual(await complete(c, ["logs", ""]), ["web1", "web2", "db1"]);
    assert.deepEqual(await complete(c, ["names", ""]), ["web", "db"]);
    assert.deepEqual(await complete(c, ["image", "build", "--set", ""]), ["web", "db"]);
    assert.deepEqual(await complete(c, ["inventory", "--format", ""]), ["ini", "yaml", "json"]);
    assert.deepEqual(await complete(c, ["completion", ""]), ["bash", "zsh", "fish"]);
    assert.deepEqual(await complete(c, ["-o", "net"]), ["netup", "netdown"]);
    assert.deepEqual(await complete(c, ["validate", ""]), [":file"]);
    assert.deepEqual(await complete(c, ["run", "up", "-c", ""]), [":file"]);
    // A config that does not load: no names, no error.
    assert.deepEqual(await complete(join(d.path, "missing.yaml"), ["ssh", ""]), []);
    // The hidden command is not offered.
    assert.ok(!(await complete(c, [""])).includes("__complete"));
  } finally {
    await d.cleanup();
  }
});

test("completion scripts: bash completes a container name through complete -F; zsh and fish scripts parse", async () => {
  const d = await tempDir();
  try {
    const c = join(d.path, "lab.yaml");
    await writeFile(c, CONFIG);
    // `aplspawn` on PATH, as the installed one is.
    const bin = join(d.path, "bin");
    await execa("mkdir", [bin]);
    await writeFile(join(bin, "aplspawn"), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    await chmod(join(bin, "aplspawn"), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const script = (await runMain(["completion", "bash"])).out;
    const r = await execa(
      "bash",
      [
        "-c",
        `${script}
complete -p aplspawn
COMP_WORDS=(aplspawn -c ${c} ssh we); COMP_CWORD=4; _aplspawn; echo "[\${COMPREPLY[*]}]"
COMP_WORDS=(aplspawn -c ${c} run st); COMP_CWORD=4; _aplspawn; echo "[\${COMPREPLY[*]}]"`,
      ],
      { env, reject: false },
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(r.stdout.split("\n"), ["complete -F _aplspawn aplspawn", "[web1 web2]", "[stop]"]);
    assert.equal((await runMain(["completion", "tcsh"])).code, 2, "an unknown shell is a usage error");
    for (const [shell, check] of [
      ["zsh", ["zsh", ["-n"]]],
      ["fish", ["fish", ["--no-execute"]]],
    ] as const) {
      const file = join(d.path, `completion.${shell}`);
      await writeFile(file, (await runMain(["completion", shell])).out);
      const has = await execa("sh", ["-c", `command -v ${check[0]}`], { reject: false });
      if (has.exitCode !== 0) continue; // the shell is not installed here
      const p = await execa(check[0], [...check[1], file], { reject: false });
      assert.equal(p.exitCode, 0, `${shell}: ${p.stderr}`);
    }
  } finally {
    await d.cleanup();
  }
});
