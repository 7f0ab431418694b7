// provision: the config's playbook against the lab (after `run up`, or alone). One task, nothing to
// undo: a failed playbook fails the command and the lab stays up, as the playbook left it.
import { resolve } from "node:path";
import { playbookFile } from "../config/paths.js";
import { UsageError } from "../src/runner/errors.js";
import { task } from "../src/runner/task.js";
import { labProvision } from "../tasks/container/provision.js";
import type { WorkflowBuilder } from "./types.js";

/** The provision workflow. */
export const provision: WorkflowBuilder = (c, o) => {
  const p = c.provision;
  if (!p) throw new UsageError("the config has no provision.playbook to run");
  return {
    name: "provision",
    steps: [
      task(labProvision, "lab.provision", {
        playbook: playbookFile(p),
        inventory: resolve(c.inventory.file),
        args: p.args,
        idempotence: p.idempotence,
        ...(o.owner ? { owner: o.owner } : {}),
      }),
    ],
  };
};
