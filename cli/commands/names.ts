// `aplspawn names`: the lab's container names, of all sets or of the sets named.
import type { Command } from "commander";
import { containerSpecs } from "../../config/containers.js";
import { UsageError } from "../../src/errors.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** `aplspawn names [SET…]`: a set the lab does not have is a usage error. */
export const namesCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("names"), ["aplspawn names", "aplspawn names web db"])
    .description("the lab's container names, one per line (of the sets named, when SET… is given)")
    .argument("[set...]", "only the containers of these sets (containers.sets)")
    .action(async (sets: string[], _o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const known = c.containers.sets?.map((s) => s.name) ?? [];
      const unknown = sets.filter((s) => !known.includes(s));
      if (unknown.length > 0)
        throw new UsageError(
          `no set named ${unknown.join(", ")} in this lab; ${known.length ? `sets: ${known.join(", ")}` : "it has no containers.sets"}`,
        );
      const n = containerSpecs(c)
        .filter((s) => sets.length === 0 || (s.set !== undefined && sets.includes(s.set)))
        .map((s) => s.name);
      cli.io.out(g.json ? `${JSON.stringify(n)}\n` : n.map((x) => `${x}\n`).join(""));
    });
