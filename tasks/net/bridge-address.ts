// Task: the bridge carries `network.address` (the containers' gateway). Rollback removes only an
// address this task added; a pre-existing bridge keeps the addresses it had.

import { z } from "zod";
import { hasAddress, linkInfo } from "../../src/net/links.js";
import { defineTask, undoUnlessGone, unmet } from "../../src/runner/task.js";

/** What the address task needs. */
const bridgeAddressParamsSchema = z.object({
  bridge: z.string(),
  /** CIDR, e.g. 10.10.12.1/26. */
  address: z.string(),
});
export type BridgeAddressParams = z.infer<typeof bridgeAddressParamsSchema>;
const bridgeAddressResultSchema = z.object({ added: z.literal(true) });

/** Give the bridge its address. */
export const bridgeAddressTask = defineTask({
  kind: "net.bridge.address",
  journaled: { params: bridgeAddressParamsSchema, result: bridgeAddressResultSchema },
  title: (p) => `Adding address ${p.address} to bridge ${p.bridge}`,
  rollbackTitle: (p) => `Removing address ${p.address} from bridge ${p.bridge}`,
  status: (p) => ({ name: `Checking if bridge has IP ${p.address} assigned`, target: p.bridge }),
  async check(ctx, p) {
    return (await hasAddress(ctx, p.bridge, p.address)) || unmet(`${p.bridge} does not have ${p.address}`);
  },
  async run(ctx, p) {
    // brd +: the subnet's broadcast address, as a DHCP-less host would set it.
    await ctx.host.exec("ip", ["addr", "add", p.address, "brd", "+", "dev", p.bridge], {
      signal: ctx.signal,
    });
    return { added: true };
  },
  async rollback(ctx, { params: p }) {
    if (!(await linkInfo(ctx, p.bridge)) || !(await hasAddress(ctx, p.bridge, p.address))) return;
    await undoUnlessGone(
      () => ctx.host.exec("ip", ["addr", "del", p.address, "dev", p.bridge], { signal: ctx.signal }),
      () => hasAddress(ctx, p.bridge, p.address),
    );
  },
});
