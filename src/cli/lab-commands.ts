// The lab commands of the CLI.
import type { CommandAdder } from "./commands.js";

/** Commands added to the program. */
export const labCommands: CommandAdder[] = [];
