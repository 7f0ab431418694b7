// The container task kinds (and the host and lab-level ones this area owns), for the registry in
// tasks/index.ts.
import type { AnyTaskDef } from "../../src/runner/task.js";
import { hostCapacity } from "../host/capacity.js";
import { hostInotify } from "../host/inotify.js";
import { hostPreflight } from "../host/preflight.js";
import { containerAddress } from "./address.js";
import { labAnsiblePing } from "./ansible-ping.js";
import { containerBootProfile } from "./boot-profile.js";
import { labContainersClaim } from "./claim.js";
import { containerDirs } from "./dirs.js";
import { containerDisk } from "./disk.js";
import { containerDiskLoop } from "./disk-loop.js";
import { containerDiskMount } from "./disk-mount.js";
import { containerHostKeys } from "./hostkeys.js";
import { containerHostname } from "./hostname.js";
import { labIdle } from "./idle.js";
import { labInventory } from "./inventory.js";
import { labInventoryGone } from "./inventory-gone.js";
import { containerLayers } from "./layers.js";
import { labLogsGone } from "./logs-gone.js";
import { containerLowerView } from "./lower.js";
import { containerNetwork } from "./network.js";
import { containerNspawn } from "./nspawn.js";
import { containerOverlay } from "./overlay.js";
import { labOwnerFiles } from "./owner-files.js";
import { labProvision } from "./provision.js";
import { containerReady } from "./ready.js";
import { containerShare, labShare } from "./share.js";
import { labSshKey } from "./sshkey.js";
import { containerUpper } from "./upper.js";
import { containerUser } from "./user.js";

/** Every container, lab and host task kind. */
export const containerTasks: AnyTaskDef[] = [
  hostPreflight,
  hostCapacity,
  hostInotify,
  labSshKey,
  labShare,
  containerDirs,
  containerShare,
  containerDisk,
  containerDiskLoop,
  containerDiskMount,
  containerUpper,
  containerLowerView,
  containerLayers,
  containerOverlay,
  containerHostKeys,
  containerHostname,
  containerUser,
  containerBootProfile,
  containerNetwork,
  containerNspawn,
  containerAddress,
  containerReady,
  labOwnerFiles,
  labInventory,
  labInventoryGone,
  labLogsGone,
  labAnsiblePing,
  labProvision,
  labIdle,
  labContainersClaim,
];

/** Kinds whose resources are the lab's lasting state (for journals written before entries carried `kept`). */
export const KEPT_KINDS: readonly string[] = containerTasks.filter((d) => d.kept).map((d) => d.kind);
