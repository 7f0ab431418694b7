// The net task kinds, for the registry in tasks/index.ts (rollback finds them by kind).
import type { AnyTaskDef } from "../../src/runner/task.js";
import { bridgeTask } from "./bridge.js";
import { bridgeAddressTask } from "./bridge-address.js";
import { bridgeGroupTask } from "./bridge-group.js";
import { bridgeIdleTask } from "./bridge-idle.js";
import { bridgeIpv6Task } from "./bridge-ipv6.js";
import { bridgeUpTask } from "./bridge-up.js";
import { netClaim } from "./claim.js";
import { forwardingTask } from "./forwarding.js";
import { chainTask } from "./iptables-chain.js";
import { ruleTask } from "./iptables-rule.js";

/** Every net task kind. */
export const netTasks: AnyTaskDef[] = [
  bridgeTask,
  bridgeAddressTask,
  bridgeGroupTask,
  bridgeIpv6Task,
  bridgeUpTask,
  forwardingTask,
  chainTask,
  ruleTask,
  bridgeIdleTask,
  netClaim,
];
