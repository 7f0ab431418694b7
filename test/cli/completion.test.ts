// Shell completion: what `aplspawn __complete` answers (commands, workflows, options, container
// and set names from the lab's config, --only lists, ssh's USER@NAME, files), and the bash, zsh and
// fish scripts, loaded for real: bash (complete -F) and fish (complete -C) complete a container
// name; zsh loads its script after compinit.
import assert from "node:assert/strict";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { runMain } from "../support/main-io.js";
import { CLI, withTempDir } from "../support/ns.js";

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

test("__complete: commands, workflows, options, choices, container and set names, --only lists, USER@NAME, files", () =>
  withTempDir(async (d) => {
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
    assert.deepEqual(await complete(c, ["snapshot", ""]), ["save", "list", "restore", "delete"]);
    assert.deepEqual(await complete(c, ["snapshot", "restore", "s1", "--only", "d"]), ["db1", "db"]);
    // A snapshot's name is the user's to choose (or in the lab's directory, root's alone): none offered.
    assert.deepEqual(await complete(c, ["snapshot", "save", ""]), []);
    assert.deepEqual(await complete(c, ["image", "build", "--set", ""]), ["web", "db"]);
    assert.deepEqual(await complete(c, ["inventory", "--format", ""]), ["ini", "yaml", "json"]);
    assert.deepEqual(await complete(c, ["completion", ""]), ["bash", "zsh", "fish"]);
    assert.deepEqual(await complete(c, ["-o", "net"]), ["netup", "netdown"]);
    assert.deepEqual(await complete(c, ["validate", ""]), [":file"]);
    assert.deepEqual(await complete(c, ["run", "up", "-c", ""]), [":file"]);
    assert.deepEqual(await complete(c, ["te"]), ["test"]);
    assert.deepEqual(await complete(c, ["test", "--k"]), ["--keep", "--keep-on-failure"]);
    assert.deepEqual(await complete(c, ["test", "--junit", ""]), [":file"]);
    // A config that does not load: no names, no error.
    assert.deepEqual(await complete(join(d.path, "missing.yaml"), ["ssh", ""]), []);
    // The hidden command is not offered.
    assert.ok(!(await complete(c, [""])).includes("__complete"));
  }));

test("completion scripts: bash and fish complete a container name through their own completion; zsh loads its script", (t) =>
  withTempDir(async (d) => {
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
    // zsh and fish (scripts/install.sh installs them; a machine without one skips its part).
    const has = async (shell: string) =>
      (await execa("sh", ["-c", `command -v ${shell}`], { reject: false })).exitCode === 0;
    if (!(await has("zsh")) || !(await has("fish"))) {
      t.diagnostic("zsh or fish is not installed: their scripts are not tried");
      return;
    }
    // zsh: the script loads after compinit and defines its completion function.
    const zsh = join(d.path, "completion.zsh");
    await writeFile(zsh, (await runMain(["completion", "zsh"])).out);
    const z = await execa(
      "zsh",
      ["-c", `autoload -Uz compinit; compinit -u; source ${zsh}; whence -w _aplspawn`],
      { env, reject: false },
    );
    assert.equal(z.stdout.trim(), "_aplspawn: function", z.stderr);
    // fish completes a container name through its own `complete -C`.
    const fish = join(d.path, "completion.fish");
    await writeFile(fish, (await runMain(["completion", "fish"])).out);
    const f = await execa("fish", ["-c", `source ${fish}; complete -C "aplspawn -c ${c} ssh we"`], {
      env,
      reject: false,
    });
    assert.equal(f.exitCode, 0, f.stderr);
    assert.deepEqual(f.stdout.split("\n"), ["web1", "web2"]);
  }));
