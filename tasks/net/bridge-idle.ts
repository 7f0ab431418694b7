// netdown's guard: no container is attached to the bridge. It changes nothing: when containers
// are still there, it fails netdown before anything is undone.

import { containerPorts } from "../../src/net/links.js";
import { defineGuard, unmet } from "../../src/runner/task.js";

/** What the guard needs. */
export interface BridgeIdleParams {
  bridge: string;
}

/** Refuse to take the network down under running containers (veth ports on the bridge). */
export const bridgeIdleTask = defineGuard<BridgeIdleParams>({
  kind: "net.bridge.idle",
  title: (p) => `Checking that no container is attached to bridge ${p.bridge}`,
  async check(ctx, p) {
    const ports = await containerPorts(ctx, p.bridge);
    return (
      ports.length === 0 ||
      unmet(
        `containers are still attached to bridge ${p.bridge} (${ports.join(", ")}); ` +
          "stop them first (aplspawn run stop), then run netdown again",
      )
    );
  },
});
