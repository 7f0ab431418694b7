// Task: the lab's network names (bridge, chains, subnet) are this lab's in this network namespace,
// claimed host-wide before anything of the network is made (src/lab/claims.ts): a second lab asking
// for the same is refused here, naming the first, and never creates or rolls back what is the
// first's. Rollback (netdown, down, a failed run) lets go of the claim.

import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import { currentNetns, dropClaim, holdsClaim, type NetClaim, takeClaim } from "../../src/lab/claims.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the claim names (journaled; the namespace is read when claiming). */
const netClaimParamsSchema = z.object({
  lab: z.string(),
  labDir: z.string(),
  bridge: z.string(),
  chains: z.array(z.string()),
  subnet: z.string(),
});
export type NetClaimParams = z.infer<typeof netClaimParamsSchema>;

const claimOf = async (ctx: HostContext, p: NetClaimParams): Promise<NetClaim> => ({
  part: "net",
  ...p,
  netns: await currentNetns(ctx.host),
});

/** Claim the lab's network names. */
export const netClaim = defineTask({
  kind: "net.claim",
  journaled: { params: netClaimParamsSchema },
  title: (p) =>
    `Claiming bridge ${p.bridge}, chains ${p.chains.join(", ")} and subnet ${p.subnet} for lab ${p.lab}`,
  rollbackTitle: (p) => `Letting go of the claim on bridge ${p.bridge} and chain ${p.chains[0]}`,
  async check(ctx, p) {
    return (
      (await holdsClaim(ctx, await claimOf(ctx, p))) || unmet(`lab ${p.lab} has not claimed its network`)
    );
  },
  async run(ctx, p) {
    await takeClaim(ctx, await claimOf(ctx, p));
    return null;
  },
  async rollback(ctx, { params: p }) {
    await dropClaim(ctx, { part: "net", labDir: p.labDir });
  },
});
