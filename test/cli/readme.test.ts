// README's command and option tables against the CLI's own definitions (its --help): every command,
// workflow and run option is in the README, and the README names none that does not exist.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { test } from "node:test";
import { workflows } from "../../workflows/index.js";
import { runMain } from "../support/main-io.js";

const README = resolve(import.meta.dirname, "../../../README.md");
const COMMANDS = resolve(import.meta.dirname, "../../../docs/commands.md");

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

/** The rows of a markdown table, as their cells. */
const rowsOf = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith("| `"))
    .map((l) => l.slice(2, -2).split(" | "));

/** The sections of docs/commands.md, by their heading ("## aplspawn ssh …"). */
function sections(doc: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of doc.split(/^## /m).slice(1)) out.set(part.split("\n")[0] ?? "", part);
  return out;
}

/** The options an options table documents ("| `--lab NAME` | …" → --lab). */
const documentedOptions = (text: string) =>
  rowsOf(text)
    .map((c) => /^`(--[\w-]+)/.exec(c[0] ?? "")?.[1])
    .filter((o): o is string => o !== undefined);

/** Every command the CLI has ("run" and "image" stand for their workflows and subcommands). */
async function cliCommands(): Promise<string[]> {
  const top = commandsOf((await runMain(["--help"])).out);
  assert.ok(top.includes("run") && top.includes("status"), `no commands parsed from --help: ${top}`);
  const image = commandsOf((await runMain(["image", "--help"])).out).map((n) => `image ${n}`);
  return [...top.filter((n) => n !== "run" && n !== "image"), ...image];
}

test("README's command table names every command and workflow the CLI has, and nothing else", async () => {
  const readme = await readFile(README, "utf8");
  const firstCells = rowsOf(readme)
    .map((c) => c[0] ?? "")
    .filter((c) => c.startsWith("`aplspawn "));
  const commands = await cliCommands();
  // A row's first cell may name several: "`aplspawn pids` / `names`".
  const documented = (words: string) =>
    firstCells.some((cell) => new RegExp(`\`(aplspawn )?${words}[\` ]`).test(cell));
  for (const c of commands)
    assert.ok(documented(c), `README's commands table has no row for \`aplspawn ${c}\``);
  for (const w of Object.keys(workflows))
    assert.ok(documented(`run ${w}`), `README's commands table has no row for \`aplspawn run ${w}\``);
  for (const cell of firstCells)
    for (const m of cell.matchAll(/`(?:aplspawn )?([a-z]+)(?: ([a-z]+))?/g)) {
      if (m[1] === "run") {
        assert.ok(
          m[2] && m[2] in workflows,
          `README documents \`aplspawn run ${m[2]}\`, which the CLI does not have`,
        );
        continue;
      }
      const name = m[1] === "image" ? `image ${m[2]}` : (m[1] ?? "");
      assert.ok(
        commands.includes(name),
        `README documents \`aplspawn ${name}\`, which the CLI does not have`,
      );
    }
});

test("docs/commands.md documents each command's own options as its --help has them, both ways", async () => {
  const doc = sections(await readFile(COMMANDS, "utf8"));
  const check = async (argv: string[], section: string | undefined, what: string) => {
    assert.ok(section !== undefined, `docs/commands.md has no section for ${what}`);
    const cli = optionsOf((await runMain([...argv, "--help"])).out).sort();
    assert.deepEqual(
      documentedOptions(section).sort(),
      cli,
      `${what}: the options documented differ from its --help`,
    );
  };
  const heading = (c: string) => [...doc.keys()].find((h) => new RegExp(`^aplspawn ${c}\\b`).test(h));
  for (const c of await cliCommands()) {
    // pids and names share a section; names has no options, like pids.
    const h = c === "names" ? heading("pids") : heading(c);
    await check(c.split(" "), h ? doc.get(h) : undefined, `aplspawn ${c}`);
  }
  await check(["run"], doc.get("aplspawn run WORKFLOW"), "aplspawn run");
  // The global options: the program's own.
  const globals = optionsOf((await runMain(["--help"])).out).filter((o) => o !== "--version");
  assert.deepEqual(
    documentedOptions(doc.get("Global options") ?? "")
      .filter((o) => o !== "--version")
      .sort(),
    globals.sort(),
    "the global options documented differ from aplspawn --help",
  );
});
