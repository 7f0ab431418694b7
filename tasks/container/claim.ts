// Task: the lab's container names are this lab's on the host (they name nspawn's /run dirs and
// machined's machines, host-wide), claimed before any container is made (src/lab/claims.ts). They
// stay the lab's while any of its containers runs: `stop` of the last one lets go, as `run down` does.
import { z } from "zod";
import { type ContainersClaim, dropClaim, holdsClaim, takeClaim } from "../../src/lab/claims.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the claim names. */
const containersClaimParamsSchema = z.object({
  lab: z.string(),
  labDir: z.string(),
  names: z.array(z.string()),
});
export type ContainersClaimParams = z.infer<typeof containersClaimParamsSchema>;

const claimOf = (p: ContainersClaimParams): ContainersClaim => ({ part: "containers", ...p });

/** Claim the lab's container names. */
export const labContainersClaim = defineTask({
  kind: "lab.claim",
  journaled: { params: containersClaimParamsSchema },
  title: (p) => `Claiming the container names ${p.names.join(", ")} for lab ${p.lab}`,
  rollbackTitle: (p) => `Letting go of the claim on lab ${p.lab}'s container names`,
  async check(ctx, p) {
    return (await holdsClaim(ctx, claimOf(p))) || unmet(`lab ${p.lab} has not claimed its container names`);
  },
  async run(ctx, p) {
    await takeClaim(ctx, claimOf(p));
    return null;
  },
  async rollback(ctx, { params: p }) {
    await dropClaim(ctx, { part: "containers", labDir: p.labDir });
  },
});
