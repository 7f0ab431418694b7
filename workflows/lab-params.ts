// What the src/lab functions the CLI and the workflows call need of a lab, derived from its config
// in one place: src/lab takes these plain values and never the config (config/paths.ts says where
// things are, config/containers.ts which containers there are; this puts them together).
import { containerSpecs } from "../config/containers.js";
import { labImages } from "../config/images.js";
import { subnetOf } from "../config/ip.js";
import { imageStore, knownHostsPath, labDir, mergedDir, ownerFiles, sshKeyPath } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { controlPathDir, type InventorySpec } from "../src/lab/inventory.js";
import type { PrepareParams } from "../src/lab/prepare-key.js";
import type { LabLook } from "../src/lab/state.js";
import type { LabPlaces } from "../src/lab/undo-scope.js";

/** The lab's places a rollback may act on (src/lab/undo-scope.ts labUndoScope). */
export const labPlaces = (c: Config): LabPlaces => ({
  labDir: labDir(c),
  key: sshKeyPath(c),
  imageStore: imageStore(c),
  machinesDir: c.containers.machinesDir,
  ownerDirInHome: ownerFiles(c, "").dir,
});

/** What the report commands read of a lab (src/lab/state.ts containerStates, labState). */
export const labLook = (c: Config): LabLook => ({
  lab: c.lab,
  labDir: labDir(c),
  subnet: subnetOf(c.network.address),
  containers: containerSpecs(c).map((s) => ({ name: s.name, ip: s.ip, merged: mergedDir(c, s.name) })),
});

/** What prepare depends on (src/lab/prepare-key.ts prepareInputs). */
export function prepareParams(c: Config): PrepareParams {
  const { file: _file, ...inventory } = c.inventory;
  return {
    prepare: c.provision?.prepare,
    args: c.provision?.args ?? [],
    inventory,
    containers: containerSpecs(c),
  };
}

/** The files a config names for reading (src/lab/config-trust.ts namedFiles). */
export const namedFilesOf = (c: Config) => ({ sshKey: c.containers.sshKey, playbook: c.provision?.playbook });

/** The lab's inventory as the config describes it (`run up` and `aplspawn inventory` share it). */
export function inventorySpec(
  c: Config,
  format: InventorySpec["format"] = c.inventory.format,
): InventorySpec {
  return {
    format,
    group: c.inventory.group,
    hosts: containerSpecs(c).map((s) => ({
      name: s.name,
      ip: s.ip,
      user: s.user,
      groups: s.groups,
      vars: s.vars,
    })),
    children: c.inventory.children,
    user: c.containers.user,
    key: sshKeyPath(c),
    knownHosts: knownHostsPath(c),
    controlPathDir: controlPathDir(labDir(c)),
    ...labPython(c),
  };
}

/**
 * The Python every container of the lab has: /usr/bin/python3 when no image of the lab sets
 * image.packages, whose default installs python3 into the layer of an image that lacks it
 * (tasks/image/packages-layer.ts): what Ansible's discovery finds on the distributions it knows. An
 * image whose packages the config lists may have no python3 there: Ansible discovers it.
 */
const labPython = (c: Config): Pick<InventorySpec, "python"> =>
  labImages(c).every((img) => img.section.packages === undefined) ? { python: "/usr/bin/python3" } : {};
