// Commands besides `run` and `validate` (reports, ssh, image build): each adds itself to the program.
import type { Command } from "commander";
import { imageCommands } from "./image-commands.js";
import { labCommands } from "./lab-commands.js";
import type { CliContext } from "./main.js";

/** Adds one command to the program. */
export type CommandAdder = (program: Command, cli: CliContext) => void;

/** Every extra command, in help order. */
export const extraCommands: CommandAdder[] = [...labCommands, ...imageCommands];
