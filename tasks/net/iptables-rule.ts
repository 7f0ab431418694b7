// Task: one iptables rule (a rule in our chain, or a jump from a built-in chain into it) is present.
// One task per rule, so a rule deleted by hand is re-added by the next netup, and only that one.

import { z } from "zod";
import {
  backendIntentSchema,
  deleteRule,
  describeRule,
  detectBackend,
  ipt,
  iptablesFor,
  ruleAdded,
  ruleExists,
  ruleSpecSchema,
} from "../../src/net/iptables.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the rule task needs: the exact rule, so rollback deletes exactly it. */
const ruleParamsSchema = z.object({
  rule: ruleSpecSchema,
  /** Insert at the top of the chain (jumps from FORWARD, ahead of a host's own REJECT rules). */
  insert: z.boolean(),
  /** What the rule is for, in words. */
  title: z.string(),
});
export type RuleParams = z.infer<typeof ruleParamsSchema>;
const ruleResultSchema = z.object({ added: z.literal(true) });

/** Add one rule if `iptables -C` does not find it. */
export const ruleTask = defineTask({
  kind: "net.iptables.rule",
  journaled: { params: ruleParamsSchema, intent: backendIntentSchema, result: ruleResultSchema },
  title: (p) => p.title,
  rollbackTitle: (p) => `Removing rule: ${p.title}`,
  status: (p) => ({ name: `Checking if iptables rule is present: ${p.title}`, target: describeRule(p.rule) }),
  async check(ctx, p) {
    await detectBackend(ctx);
    return (await ruleExists(ctx, "iptables", p.rule)) || unmet("iptables -C finds no such rule");
  },
  async prepare(ctx) {
    return { backend: await detectBackend(ctx) };
  },
  async run(ctx, p) {
    await ipt(ctx, "iptables", p.rule.table, [p.insert ? "-I" : "-A", p.rule.chain, ...p.rule.args]);
    ruleAdded(ctx, p.rule);
    return { added: true };
  },
  async rollback(ctx, { params: p, intent }) {
    await deleteRule(ctx, await iptablesFor(ctx, intent?.backend), p.rule);
  },
});
