// `aplspawn image build|inspect`: defined in cli/image-commands.ts (its move here waits on the
// image work in flight there); this file gives the command its place and its examples.
import type { Command } from "commander";
import { type CommandAdder, withExamples } from "../context.js";
import { imageCommands } from "../image-commands.js";

const EXAMPLES: Record<string, string[]> = {
  image: ["sudo aplspawn image build", "aplspawn image inspect"],
  build: ["sudo aplspawn image build --set db --force"],
  inspect: ["aplspawn image inspect /var/lib/aplspawn/images/debian-bookworm.img"],
};

/** `aplspawn image` and its subcommands, each with its examples. */
export const imageCommand: CommandAdder = (program, cli) => {
  for (const add of imageCommands) add(program, cli);
  const image = program.commands.find((c) => c.name() === "image") as Command;
  for (const c of [image, ...image.commands]) {
    const ex = EXAMPLES[c.name()];
    if (ex) withExamples(c, ex);
  }
};
