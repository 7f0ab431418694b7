// `aplspawn schema`: the config's JSON Schema, for editors (config/json-schema.ts).
import { type CommandAdder, withExamples } from "../context.js";

/** `aplspawn schema`: the schema on stdout. */
export const schemaCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("schema"), ["aplspawn schema > aplspawn.schema.json"])
    .description(
      "print the config's JSON Schema (editors: `# yaml-language-server: $schema=FILE` in a config)",
    )
    .action(async () => {
      const { configJsonSchema } = await import("../../config/json-schema.js");
      cli.io.out(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    });
