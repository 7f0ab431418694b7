// netdown: refuse while containers are attached, then undo every net.* change the journal holds,
// newest first. Works from the journal: only what aplspawn created is removed.
import type { Config } from "../config/schema.js";
import { type Step, task, undo } from "../src/runner/task.js";
import { bridgeIdleTask } from "../tasks/net/bridge-idle.js";
import { entries } from "./lab-steps.js";
import type { WorkflowBuilder } from "./types.js";

/** The steps that take the network down. */
const netdownSteps = (c: Config): Step[] => [
  task(bridgeIdleTask, "net.guard", { bridge: c.network.bridge }),
  undo("net.undo", `Undoing what netup changed (bridge ${c.network.bridge}, chain ${c.network.chain})`, (e) =>
    entries.family(e, "net"),
  ),
];

/** The netdown workflow. */
export const netdown: WorkflowBuilder = (c) => ({ name: "netdown", steps: netdownSteps(c) });
