// provision: the config's playbook against the lab (after `run up`, or alone). One task, nothing to
// undo: a failed playbook fails the command and the lab stays up, as the playbook left it.
import { resolve } from "node:path";
import { ownerFiles, playbookFile } from "../config/paths.js";
import { ANSIBLE_ACCOUNT } from "../src/lab/owner.js";
import { UsageError } from "../src/runner/errors.js";
import { task } from "../src/runner/task.js";
import { labProvision } from "../tasks/container/provision.js";
import { ansibleInventory } from "./lab-steps.js";
import type { WorkflowBuilder } from "./types.js";

/** The provision workflow. */
export const provision: WorkflowBuilder = (c, o) => {
  const p = c.provision;
  if (!p) throw new UsageError("the config has no provision.playbook to run");
  // Ansible never runs as root against the lab: as its owner, else as the unprivileged account.
  const as = o.owner ?? o.ansibleUser;
  if (!as)
    throw new UsageError(
      `provision runs Ansible as the lab's owner (sudo from your account, or --owner) or as an unprivileged account (--ansible-user, or ${ANSIBLE_ACCOUNT}, which scripts/install.sh makes); neither is here, and Ansible never runs as root against a lab`,
    );
  return {
    name: "provision",
    steps: [
      task(labProvision, "lab.provision", {
        playbook: playbookFile(p),
        inventory: o.owner ? resolve(c.inventory.file) : ansibleInventory(c, as),
        args: p.args,
        idempotence: p.idempotence,
        owner: as,
        emptyConfig: ownerFiles(c, as.home).emptyAnsibleCfg,
      }),
    ],
  };
};
