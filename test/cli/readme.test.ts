// README's command and option tables against the CLI's own definitions (its --help): every command,
// workflow and run option is in the README, and the README names none that does not exist.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { test } from "node:test";
import { workflows } from "../../workflows/index.js";
import { runMain } from "../support/main-io.js";

const README = resolve(import.meta.dirname, "../../../README.md");

/** The names of a --help's "Commands:" section. */
function commandsOf(help: string): string[] {
  // The section ends at the next heading (Examples:, Global Options:).
  const section = (help.split(/^Commands:$/m)[1] ?? "").split(/^\S/m)[0] ?? "";
  return [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1] ?? "").filter((n) => n && n !== "help");
}

/** The long flags of a --help's "Options:" section. */
function optionsOf(help: string): string[] {
  const section = (help.split(/^Options:$/m)[1] ?? "").split(/^\S/m)[0] ?? "";
  return [...section.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)]
    .map((m) => m[1] ?? "")
    .filter((f) => f !== "--help");
}

test("every command's help ends with examples", async () => {
  const top = commandsOf((await runMain(["--help"])).out);
  const image = commandsOf((await runMain(["image", "--help"])).out).map((n) => ["image", n]);
  for (const argv of [...top.map((n) => [n]), ...image]) {
    const help = (await runMain([...argv, "--help"])).out;
    assert.match(help, /\nExamples:\n {2}\S/, `${argv.join(" ")} --help has no example`);
  }
});

test("README's tables name every command, workflow and run option the CLI has, and nothing else", async () => {
  const readme = await readFile(README, "utf8");
  const rows = readme.split("\n").filter((l) => l.startsWith("| `"));
  const top = commandsOf((await runMain(["--help"])).out);
  assert.ok(top.includes("run") && top.includes("status"), `no commands parsed from --help: ${top}`);
  const image = commandsOf((await runMain(["image", "--help"])).out).map((n) => `image ${n}`);
  const commands = [...top.filter((n) => n !== "run" && n !== "image"), ...image];
  // A row's first cell may name several: "| `aplspawn pids` / `names` |".
  const firstCells = rows.filter((r) => r.startsWith("| `aplspawn ")).map((r) => r.split(" | ")[0] ?? "");
  const documented = (words: string) =>
    firstCells.some((cell) => new RegExp(`\`(aplspawn )?${words}[\` ]`).test(cell));
  for (const c of commands)
    assert.ok(documented(c), `README's commands table has no row for \`aplspawn ${c}\``);
  for (const w of Object.keys(workflows))
    assert.ok(
      rows.some((r) => r.startsWith("| `aplspawn run ") && new RegExp(`\`(aplspawn )?run ${w}\\b`).test(r)),
      `README's commands table has no row for \`aplspawn run ${w}\``,
    );
  const runOptions = optionsOf((await runMain(["run", "--help"])).out);
  assert.ok(runOptions.includes("--dry-run"), `no options parsed from run --help: ${runOptions}`);
  for (const o of runOptions)
    assert.ok(
      rows.some((r) => r.startsWith(`| \`${o}`)),
      `README's options of run have no row for ${o}`,
    );
  // And the other way: a documented command the CLI does not have.
  for (const r of rows) {
    const m = /^\| `aplspawn ([a-z]+)(?: ([a-z]+))?/.exec(r);
    if (!m?.[1] || m[1] === "run") continue;
    const name = m[1] === "image" ? `image ${m[2]}` : m[1];
    assert.ok(commands.includes(name), `README documents \`aplspawn ${name}\`, which the CLI does not have`);
  }
});
