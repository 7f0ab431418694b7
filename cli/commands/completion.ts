// `aplspawn completion bash|zsh|fish`: the script (cli/completion.ts), and `__complete`, which
// answers it from the CLI's own command and option definitions and the lab's config.
import { Argument } from "commander";
import { completionScript, completions, SHELLS } from "../completion.js";
import { type CommandAdder, type GlobalOptions, withExamples } from "../context.js";

/** `aplspawn completion SHELL`, and the hidden `__complete` its script calls. */
export const completionCommand: CommandAdder = (program, cli) => {
  withExamples(program.command("completion"), [
    'eval "$(aplspawn completion bash)"',
    "aplspawn completion fish | source",
  ])
    .description('print a shell completion script: eval "$(aplspawn completion bash)"')
    .addArgument(new Argument("<shell>", SHELLS.join(", ")).choices(SHELLS))
    .action((shell: (typeof SHELLS)[number]) => cli.io.out(completionScript(shell)));
  program
    .command("__complete", { hidden: true })
    .argument("[words...]")
    .allowUnknownOption()
    .action(async (words: string[]) => {
      const { workflows } = await import("../../workflows/index.js");
      const found = await completions(
        program,
        words.length ? words : [""],
        Object.keys(workflows),
        async (config) => {
          try {
            const [c, { containerSpecs }] = await Promise.all([
              cli.load({ config } as GlobalOptions),
              import("../../config/containers.js"),
            ]);
            return {
              containers: containerSpecs(c).map((s) => s.name),
              sets: c.containers.sets?.map((s) => s.name) ?? [],
            };
          } catch {
            return { containers: [], sets: [] };
          }
        },
      );
      if (found.length) cli.io.out(`${found.join("\n")}\n`);
    });
};
