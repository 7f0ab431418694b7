// Task: a chain of our own exists in a table (the filter chain holding the lab's forwarding rules,
// the nat chain holding its MASQUERADE). A chain that was already there is used and never deleted.
// A new chain is made with its own rules in one `iptables-restore --noflush` (atomic: the chain and
// all of them, or nothing), not a process per rule; each rule's task then finds it there (this run
// made the chain and its rules: src/net/iptables.ts) and, were it deleted by hand later, re-adds it
// alone. The chain's rollback flushes whatever is in it.

import { z } from "zod";
import {
  backendIntentSchema,
  chainExists,
  chainMade,
  detectBackend,
  ipt,
  iptablesFor,
  listsChain,
  restoreWord,
  ruleAdded,
  tableSchema,
} from "../../src/net/iptables.js";
import { defineTask, undoUnlessGone, unmet } from "../../src/runner/task.js";

/** What the chain task needs. */
export const chainParamsSchema = z.object({
  table: tableSchema,
  chain: z.string(),
  /**
   * The chain's own rules (their rule tasks follow), in the order those tasks add them (-I or -A),
   * made with a new chain; absent in journals written before.
   */
  rules: z.array(z.object({ args: z.array(z.string()), insert: z.boolean() })).optional(),
});
export type ChainParams = z.infer<typeof chainParamsSchema>;
const chainResultSchema = z.object({ created: z.literal(true) });

/** Create a user-defined chain if it is missing. */
export const chainTask = defineTask({
  kind: "net.iptables.chain",
  journaled: { params: chainParamsSchema, intent: backendIntentSchema, result: chainResultSchema },
  title: (p) => `Creating chain ${p.chain} in table ${p.table}`,
  rollbackTitle: (p) => `Deleting chain ${p.chain} from table ${p.table}`,
  status: (p) => ({
    name: `Checking if iptables chain ${p.chain} exists in table ${p.table}`,
    target: `-t ${p.table} -N ${p.chain}`,
  }),
  async check(ctx, p) {
    await detectBackend(ctx);
    return (
      (await chainExists(ctx, "iptables", p.table, p.chain)) ||
      unmet(`no chain ${p.chain} in iptables -t ${p.table} -S`)
    );
  },
  async prepare(ctx) {
    return { backend: await detectBackend(ctx) };
  },
  async run(ctx, p) {
    // A rule iptables-restore would read otherwise (a word to quote) is left to its own task; so
    // are all in a preview, which shows each rule's own command (a batch's input is not shown).
    const rules =
      !ctx.dryRun && (p.rules ?? []).every((r) => r.args.every(restoreWord)) ? (p.rules ?? []) : [];
    if (rules.length === 0) await ipt(ctx, "iptables", p.table, ["-N", p.chain]);
    else {
      // -N, not a ":chain" line: an existing chain fails the batch, as `iptables -N` fails (with
      // --noflush a ":chain" line would flush it).
      const batch = [
        `*${p.table}`,
        `-N ${p.chain}`,
        ...rules.map((r) => [r.insert ? "-I" : "-A", p.chain, ...r.args].join(" ")),
        "COMMIT",
        "",
      ].join("\n");
      await ctx.host.exec("iptables-restore", ["-w", "--noflush"], { input: batch, signal: ctx.signal });
    }
    chainMade(ctx, p.table, p.chain, true);
    for (const r of rules) ruleAdded(ctx, { table: p.table, chain: p.chain, args: r.args });
    return { created: true };
  },
  // Only a chain this task created is journaled, so only such a chain is flushed and deleted.
  // The jumps into it are newer journal entries and are undone first.
  async rollback(ctx, { params: p, intent }) {
    const bin = await iptablesFor(ctx, intent?.backend);
    // One listing says whether the chain is there and what refers to it.
    const all = await ipt(ctx, bin, p.table, ["-S"], { readOnly: true });
    if (!listsChain(all.stdout, p.chain)) return;
    const refs = all.stdout
      .split("\n")
      .filter((l) => l.startsWith("-A ") && new RegExp(`\\s-[jg] ${p.chain}(\\s|$)`).test(l));
    if (refs.length > 0)
      throw new Error(
        `chain ${p.chain} (table ${p.table}) is still referenced; remove these rules first: ${refs.join("; ")}`,
      );
    const there = () => chainExists(ctx, bin, p.table, p.chain);
    await undoUnlessGone(() => ipt(ctx, bin, p.table, ["-F", p.chain]), there);
    await undoUnlessGone(() => ipt(ctx, bin, p.table, ["-X", p.chain]), there);
    chainMade(ctx, p.table, p.chain, false);
  },
});
