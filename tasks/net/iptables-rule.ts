// Task: one iptables rule (a rule in our chain, or a jump from a built-in chain into it) is present.
// One task per rule, so a rule deleted by hand is re-added by the next netup, and only that one.

import {
  type Backend,
  deleteRule,
  describeRule,
  detectBackend,
  ipt,
  iptablesFor,
  type RuleSpec,
  ruleExists,
} from "../../src/net/iptables.js";
import { defineTask, unmet } from "../../src/runner/task.js";

/** What the rule task needs: the exact rule, so rollback deletes exactly it. */
export interface RuleParams {
  rule: RuleSpec;
  /** Insert at the top of the chain (jumps from FORWARD, ahead of a host's own REJECT rules). */
  insert: boolean;
  /** What the rule is for, in words. */
  title: string;
}

/** Add one rule if `iptables -C` does not find it. */
export const ruleTask = defineTask<RuleParams, { added: true }, { backend: Backend }>({
  kind: "net.iptables.rule",
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
    return { added: true };
  },
  async rollback(ctx, { params: p, intent }) {
    await deleteRule(ctx, await iptablesFor(ctx, intent?.backend), p.rule);
  },
});
