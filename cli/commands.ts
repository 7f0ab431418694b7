// Commands besides `run` and `validate` (reports, ssh, image build): each adds itself to the program.
import { completionCommands } from "./completion.js";
import type { CommandAdder } from "./context.js";
import { imageCommands } from "./image-commands.js";
import { initCommands } from "./init-command.js";
import { labCommands } from "./lab-commands.js";
import { labsCommands } from "./labs-command.js";
import { snapshotCommands } from "./snapshot-command.js";
import { testCommands } from "./test-command.js";

/** Every extra command, in help order. */
export const extraCommands: CommandAdder[] = [
  ...initCommands,
  ...labCommands,
  ...testCommands,
  ...labsCommands,
  ...snapshotCommands,
  ...imageCommands,
  ...completionCommands,
];
