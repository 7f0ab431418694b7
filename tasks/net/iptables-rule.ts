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
import { defineTask, type TaskContext, unmet } from "../../src/runner/task.js";
import { chainParamsSchema, chainTask } from "./iptables-chain.js";

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

/**
 * Whether the same undo deletes the rule's chain after it (a chain this lab made: the chain's
 * rollback flushes it), with the same backend, and the rule jumps to no chain that undo deletes
 * (a chain still referenced is not deleted). Its own `iptables -D` is then not needed: a process
 * and the xtables lock for each of about 30 rules of `run down`. Should the chain's rollback fail
 * or never run, the chain's entry stays in the journal and the next undo flushes the chain.
 */
function goesWithItsChain(ctx: TaskContext, p: RuleParams, backend: string | undefined): boolean {
  const chains = (ctx.undoneAfter ?? []).flatMap((e) => {
    if (e.kind !== chainTask.kind) return [];
    const c = chainParamsSchema.safeParse(e.params);
    const i = backendIntentSchema.safeParse(e.intent);
    return c.success && c.data.table === p.rule.table && (i.success ? i.data.backend : undefined) === backend
      ? [c.data.chain]
      : [];
  });
  const a = p.rule.args;
  const target = a.findLastIndex((x) => x === "-j" || x === "-g");
  return chains.includes(p.rule.chain) && (target < 0 || !chains.includes(a[target + 1] ?? ""));
}

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
    if (goesWithItsChain(ctx, p, intent?.backend)) return;
    await deleteRule(ctx, await iptablesFor(ctx, intent?.backend), p.rule);
  },
});
