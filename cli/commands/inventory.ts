// `aplspawn inventory`: the Ansible inventory, written where the config says (or --output), or
// printed in Ansible's --list shape.
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { UsageError } from "../../src/errors.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** `aplspawn inventory`: root writes where a config says only under the config's directory. */
export const inventoryCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("inventory"), [
    "aplspawn inventory --format yaml --output hosts.yml",
    "aplspawn inventory --format json",
  ])
    .description("write the Ansible inventory (hosts with address, user, key and pinned host keys)")
    .addOption(
      new Option(
        "--format <format>",
        "ini or yaml (default: inventory.format); json: Ansible's --list shape, on stdout (for inventory scripts and tools)",
      ).choices(["ini", "yaml", "json"]),
    )
    .option("--output <file>", "where to write it (default: inventory.file); - for stdout")
    .action(async (o: { format?: string; output?: string }, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const format = (o.format ?? c.inventory.format) as "ini" | "yaml" | "json";
      const [{ renderInventory, inventoryList }, { inventorySpec }] = await Promise.all([
        import("../../src/lab/inventory.js"),
        import("../../workflows/lab-params.js"),
      ]);
      if (format === "json") {
        // Ansible reads this shape from an inventory script's stdout, never from a file.
        if (o.output !== undefined && o.output !== "-")
          throw new UsageError(
            "--format json prints to stdout (an inventory script's answer); leave out --output",
          );
        cli.io.out(`${JSON.stringify(inventoryList(inventorySpec(c, "yaml")), null, 2)}\n`);
        return;
      }
      const text = renderInventory(inventorySpec(c, format));
      if (o.output === "-") {
        cli.io.out(text);
        return;
      }
      // Where a config says, root writes only under the config's own directory (an --output the
      // user typed is theirs to choose).
      if (o.output === undefined && cli.io.host.uid() === 0) {
        const l = await cli.loadFile(g);
        const { inventoryPlaceProblem } = await import("../../src/lab/config-trust.js");
        const problem = inventoryPlaceProblem(c.inventory.file, l);
        if (problem) throw new UsageError(problem);
      }
      const file = resolve(o.output ?? c.inventory.file);
      await cli.io.host.fs.writeFile(file, text, 0o644);
      cli.io.out(
        g.json
          ? `${JSON.stringify({ ok: true, file })}\n`
          : `‣ [ OK ] Generated ansible inventory file ${file}\n`,
      );
    });
