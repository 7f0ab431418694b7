// A lab across hosts, up (`run up` with `cluster`), as the user sees it: the lab key on the control
// node → its file:// images got and verified there → the lab split into each host's share → every
// host's share up (with copies of those images) and the overlay, by Ansible
// (ansible/cluster-up.yml) → the one inventory. `run down` undoes these from the journal: the
// playbook's rollback is ansible/cluster-down.yml.
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isFileImage, labImages } from "../config/images.js";
import { labDir, ownerFiles, sshKeyPath } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import type { Owner } from "../src/lab/owner.js";
import { type Step, task } from "../src/runner/task.js";
import { type ClusterHostsParams, clusterHosts } from "../tasks/cluster/hosts.js";
import { clusterInventory } from "../tasks/cluster/inventory.js";
import { clusterPurge } from "../tasks/cluster/purge.js";
import { clusterShares } from "../tasks/cluster/shares.js";
import { imageGetSteps } from "./getimage.js";
import { inventorySpec } from "./lab-params.js";
import { sshKeyStep } from "./lab-steps.js";
import type { WorkflowBuilder, WorkflowOptions } from "./types.js";

/** The package's own files (the playbooks, package.json): from dist/workflows, two levels up. */
const packaged = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

/** Where the control node keeps the split: the owner's (Ansible runs as them), else the lab's. */
export const clusterDir = (c: Config, owner?: Owner) =>
  owner ? `${ownerFiles(c, owner.home).dir}/cluster` : `${labDir(c)}/cluster`;

/** How the control node runs the cluster's playbooks: the inventory, the split's directory, who. */
const hostsParams = (c: Config, o: WorkflowOptions): ClusterHostsParams => ({
  inventory: resolve(c.cluster!.inventory),
  dir: clusterDir(c, o.owner),
  up: packaged("ansible/cluster-up.yml"),
  down: packaged("ansible/cluster-down.yml"),
  ...(o.owner ? { owner: o.owner } : {}),
});

/** `run down --purge` of a lab across hosts: the hosts' shares purged before the journal is undone. */
export const clusterPurgeStep = (c: Config, o: WorkflowOptions): Step =>
  task(clusterPurge, "cluster.purge", hostsParams(c, o));

/** The up workflow of a lab across hosts. */
export const clusterUp: WorkflowBuilder = (c, o) => {
  const hosts = hostsParams(c, o);
  const { dir, inventory } = hosts;
  const config: Config = { ...c, cluster: { ...c.cluster!, inventory } };
  const owner = o.owner ? { owner: o.owner } : {};
  const { hosts: _hosts, ...inventoryDefaults } = inventorySpec(c);
  return {
    name: "up",
    steps: [
      sshKeyStep(c, o.owner),
      // The control node's file:// images, built if missing and verified: the hosts get copies.
      ...labImages(c)
        .filter((img) => isFileImage(img.section))
        .flatMap((img) => imageGetSteps(c, img)),
      task(clusterShares, "cluster.shares", {
        dir,
        key: sshKeyPath(c),
        versionFile: packaged("package.json"),
        config,
        ...owner,
      }),
      task(clusterHosts, "cluster.hosts", {
        ...hosts,
        ...(o.keepGoing ? { keepGoing: true, prune: packaged("ansible/cluster-prune.yml") } : {}),
      }),
      // The lab's inventory as one host would write it (inventorySpec), its hosts read from the
      // split at run, its key and known_hosts the control node's copies.
      task(clusterInventory, "cluster.inventory", {
        ...inventoryDefaults,
        path: resolve(c.inventory.file),
        dir,
        key: `${dir}/id_ed25519`,
        knownHosts: `${dir}/known_hosts`,
        controlPathDir: o.owner
          ? ownerFiles(c, o.owner.home).controlPathDir
          : inventoryDefaults.controlPathDir,
        ...owner,
      }),
    ],
  };
};
