// The tasks of a lab across hosts (the control node's side).
import type { AnyTaskDef } from "../../src/runner/task.js";
import { clusterHosts } from "./hosts.js";
import { clusterInventory } from "./inventory.js";
import { clusterPurge } from "./purge.js";
import { clusterShares } from "./shares.js";

/** Every cluster task kind. */
export const clusterTasks: AnyTaskDef[] = [clusterShares, clusterHosts, clusterInventory, clusterPurge];
