// Task (netdown's guard): no container is attached to the bridge. It changes nothing: when
// containers are still there, its run refuses, so netdown stops before it undoes anything.

import { containerPorts } from "../../src/net/links.js";
import { defineTask } from "../../src/runner/task.js";

/** What the guard needs. */
export interface BridgeIdleParams {
  bridge: string;
}

/** Refuse to take the network down under running containers (veth ports on the bridge). */
export const bridgeIdleTask = defineTask<BridgeIdleParams>({
  kind: "net.bridge.idle",
  title: (p) => `Checking that no container is attached to bridge ${p.bridge}`,
  async check(ctx, p) {
    return (await containerPorts(ctx, p.bridge)).length === 0;
  },
  async run(ctx, p) {
    const ports = await containerPorts(ctx, p.bridge);
    throw new Error(
      `containers are still attached to bridge ${p.bridge} (${ports.join(", ")}); ` +
        "stop them first (aplspawn run stop), then run netdown again",
    );
  },
});
