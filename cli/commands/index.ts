// Every command of the CLI, one file each, in the order help lists them. Each file declares its
// command: arguments, options, examples and handler.
import type { CommandAdder } from "../context.js";
import { completionCommand } from "./completion.js";
import { execCommand } from "./exec.js";
import { imageCommand } from "./image.js";
import { initCommand } from "./init.js";
import { inventoryCommand } from "./inventory.js";
import { labsCommand } from "./labs.js";
import { logsCommand } from "./logs.js";
import { namesCommand } from "./names.js";
import { pidsCommand } from "./pids.js";
import { runCommand } from "./run.js";
import { schemaCommand } from "./schema.js";
import { snapshotCommand } from "./snapshot.js";
import { sshCommand } from "./ssh.js";
import { statusCommand } from "./status.js";
import { testCommand } from "./test.js";
import { validateCommand } from "./validate.js";

/** The commands, in help order. */
export const commands: readonly CommandAdder[] = [
  runCommand,
  validateCommand,
  initCommand,
  schemaCommand,
  statusCommand,
  pidsCommand,
  namesCommand,
  inventoryCommand,
  sshCommand,
  execCommand,
  logsCommand,
  testCommand,
  labsCommand,
  snapshotCommand,
  imageCommand,
  completionCommand,
];
