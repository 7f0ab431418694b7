// spawn (the original operation): preflight → attach the image → lab key → containers, on a network
// that netup brought up. --only limits it to some containers.
import { attachSteps } from "./attach.js";
import {
  containersClaimStep,
  containersGroup,
  preflightSteps,
  selectedSpecs,
  sshKeyStep,
} from "./lab-steps.js";
import type { WorkflowBuilder } from "./types.js";

/** The spawn workflow. */
export const spawn: WorkflowBuilder = (c, o) => ({
  name: "spawn",
  steps: [
    ...preflightSteps(c, { bridgeMustExist: true }),
    containersClaimStep(c),
    ...attachSteps(c),
    sshKeyStep(c),
    containersGroup(c, selectedSpecs(c, o), o),
  ],
});
