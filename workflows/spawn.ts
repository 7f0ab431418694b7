// spawn (the original operation): preflight → attach the image → lab key → containers, on a network
// that netup brought up. --only limits it to some containers.
import type { Config } from "../config/schema.js";
import type { Owner } from "../src/lab/owner.js";
import type { Step } from "../src/runner/task.js";
import { attachSteps } from "./attach.js";
import {
  containersClaimStep,
  containersGroup,
  labShareStep,
  preflightSteps,
  selectedSpecs,
  sshKeyStep,
} from "./lab-steps.js";
import { allPackagesSteps } from "./packages.js";
import type { WorkflowBuilder } from "./types.js";

/** What spawn makes of the lab before its containers (composed into reset too): the network must be up. */
export const spawnLabSteps = (c: Config, reader?: Owner): Step[] => [
  ...preflightSteps(c, { bridgeMustExist: true }),
  containersClaimStep(c),
  labShareStep(c),
  ...attachSteps(c),
  ...allPackagesSteps(c),
  sshKeyStep(c, reader),
];

/** The spawn workflow. */
export const spawn: WorkflowBuilder = (c, o) => ({
  name: "spawn",
  steps: [...spawnLabSteps(c), containersGroup(c, selectedSpecs(c, o), o)],
});
