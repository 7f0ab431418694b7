// provision: the config's playbook against the lab (after `run up`, or alone). One task, nothing to
// undo: a failed playbook fails the command and the lab stays up, as the playbook left it. The
// same task runs `aplspawn test`'s prepare, converge, idempotence and verify (workflows/test.ts).
import { resolve } from "node:path";
import { ownerFiles, playbookFile } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import { ANSIBLE_ACCOUNT } from "../src/lab/owner.js";
import { task } from "../src/runner/task.js";
import { labProvision, type ProvisionParams } from "../tasks/container/provision.js";
import { ansibleInventory } from "./lab-steps.js";
import type { WorkflowBuilder, WorkflowOptions } from "./types.js";

/** Which playbook of provision a run is, and how (provision.playbook by default, as configured). */
export interface PlaybookRun {
  /** The workflow's name (provision, prepare, converge, idempotence, verify). */
  name: string;
  playbook: string;
  idempotence: boolean;
  pass?: ProvisionParams["pass"];
}

/** A workflow of one ansible-playbook task against the lab: provision's, or one step of `aplspawn test`. */
export function playbookWorkflow(c: Config, o: WorkflowOptions, run?: PlaybookRun) {
  const p = c.provision;
  if (!p) throw new UsageError("the config has no provision.playbook to run");
  // Ansible never runs as root against the lab: as its owner, else as the unprivileged account.
  const as = o.owner ?? o.ansibleUser;
  if (!as)
    throw new UsageError(
      `provision runs Ansible as the lab's owner (sudo from your account, or --owner) or as an unprivileged account (--ansible-user, or ${ANSIBLE_ACCOUNT}, which scripts/install.sh makes); neither is here, and Ansible never runs as root against a lab`,
    );
  const r = run ?? { name: "provision", playbook: p.playbook, idempotence: p.idempotence };
  return {
    name: r.name,
    steps: [
      task(labProvision, `lab.${r.name}`, {
        playbook: playbookFile({ playbook: r.playbook }),
        inventory: o.owner ? resolve(c.inventory.file) : ansibleInventory(c, as),
        args: p.args,
        idempotence: r.idempotence,
        ...(r.pass ? { pass: r.pass } : {}),
        owner: as,
        emptyConfig: ownerFiles(c, as.home).emptyAnsibleCfg,
      }),
    ],
  };
}

/** The provision workflow. */
export const provision: WorkflowBuilder = (c, o) => playbookWorkflow(c, o);
