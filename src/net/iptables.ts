// iptables access shared by the net tasks: backend detection, the command to use, and the reads
// (chain present, rule present) that checks, rollbacks and probes all ask the live host.
import { z } from "zod";
import type { HostContext } from "../host/host.js";
import { type RunContext, runKey } from "../host/run-scope.js";

/** The netfilter backend the iptables command drives; rules of one are invisible to the other. */
export const backendSchema = z.enum(["nf_tables", "legacy"]);
export type Backend = z.infer<typeof backendSchema>;

/** What the iptables tasks journal before they change anything: the backend their rollback uses. */
export const backendIntentSchema = z.object({ backend: backendSchema });

/** The tables aplspawn touches. */
export const tableSchema = z.enum(["filter", "nat"]);
export type Table = z.infer<typeof tableSchema>;

/** One rule: the chain it lives in and its match/target arguments (as for `iptables -A chain …`). */
export const ruleSpecSchema = z.object({
  table: tableSchema,
  chain: z.string(),
  args: z.array(z.string()),
});
export type RuleSpec = z.infer<typeof ruleSpecSchema>;

// One run asks once: every iptables task checks the backend, and each `iptables -V` costs a
// process start (13 tasks, twice each, and each rule's rollback). The backend does not change
// under a running aplspawn.
const backendKey = runKey<Promise<Backend>>("iptables backend");

/** Which backend `iptables` uses now (asked once per run); a clear error when iptables is not installed. */
export function detectBackend(ctx: RunContext): Promise<Backend> {
  return ctx.memo(backendKey, () => askBackend(ctx));
}

async function askBackend(ctx: HostContext): Promise<Backend> {
  if (!(await ctx.host.which("iptables")))
    throw new Error(
      "iptables is not installed (or not on PATH): aplspawn needs it for the lab's forwarding and NAT rules; " +
        "install it (Debian: apt-get install iptables)",
    );
  const r = await ctx.host.exec("iptables", ["-V"], { readOnly: true, signal: ctx.signal });
  // "iptables v1.8.9 (nf_tables)" or "(legacy)"; before 1.8 there was only legacy and no suffix.
  return /\(nf_tables\)/.test(r.stdout + r.stderr) ? "nf_tables" : "legacy";
}

/**
 * The command that drives `backend`. Normally plain `iptables`; if the host switched backends since
 * the rules were made (update-alternatives), the backend's own binary, so that rollback deletes the
 * rules where they are instead of mixing backends.
 */
export async function iptablesFor(ctx: RunContext, backend: Backend | undefined): Promise<string> {
  const now = await detectBackend(ctx);
  if (backend === undefined || backend === now) return "iptables";
  const own = backend === "nf_tables" ? "iptables-nft" : "iptables-legacy";
  if (await ctx.host.which(own)) return own;
  throw new Error(
    `the rules were made with the ${backend} backend of iptables, but iptables now uses ${now} and ${own} is not installed`,
  );
}

/** Run `<bin> -w -t <table> …args` (always -w: wait for the xtables lock rather than fail). */
export function ipt(
  ctx: HostContext,
  bin: string,
  table: Table,
  args: readonly string[],
  opts: { readOnly?: boolean; allowFail?: boolean } = {},
) {
  return ctx.host.exec(bin, ["-w", "-t", table, ...args], { signal: ctx.signal, ...opts });
}

/** Whether a user-defined chain exists in the table. */
export async function chainExists(
  ctx: HostContext,
  bin: string,
  table: Table,
  chain: string,
): Promise<boolean> {
  // Listing the whole table works the same on both backends; `-S CHAIN` of a missing chain
  // gives backend-specific errors.
  return listsChain((await ipt(ctx, bin, table, ["-S"], { readOnly: true })).stdout, chain);
}

/** Whether a table's `iptables -S` listing has the user-defined chain. */
export const listsChain = (listing: string, chain: string): boolean =>
  listing.split("\n").some((l) => l.trim() === `-N ${chain}`);

// The chains this run created (`-N`) and has not deleted since, with the rules it added to them: a
// rule in one of them cannot be there yet unless this run added it, so its check needs no
// `iptables -C` (a process each, about 20 rules at every up of a new lab, on the path before the
// first container starts). The lab lock keeps other processes out of the lab's chains meanwhile.
const madeKey = runKey<Map<string, Set<string>>>("iptables chains made");
const made = (ctx: RunContext) => ctx.memo(madeKey, () => new Map<string, Set<string>>());
const chainKey = (table: Table, chain: string) => `${table}/${chain}`;

/** Record that this run created the chain (empty) or deleted it. */
export function chainMade(ctx: RunContext, table: Table, chain: string, there: boolean): void {
  if (there) made(ctx).set(chainKey(table, chain), new Set());
  else made(ctx).delete(chainKey(table, chain));
}

/** Record a rule this run added to a chain it made: it is there, its check needs no `iptables -C`. */
export function ruleAdded(ctx: RunContext, rule: RuleSpec): void {
  made(ctx).get(chainKey(rule.table, rule.chain))?.add(rule.args.join("\0"));
}

/** Whether the rule exists (`iptables -C`); a missing chain or jump target means absent. */
export async function ruleExists(ctx: RunContext, bin: string, rule: RuleSpec): Promise<boolean> {
  const fresh = made(ctx).get(chainKey(rule.table, rule.chain));
  if (bin === "iptables" && fresh) return fresh.has(rule.args.join("\0"));
  const r = await ipt(ctx, bin, rule.table, ["-C", rule.chain, ...rule.args], {
    readOnly: true,
    allowFail: true,
  });
  if (r.exitCode === 0) return true;
  assertAbsent(r);
  return false;
}

/**
 * Delete the rule if it is there, in one call (`-D` of an absent rule fails as `-C` does); false
 * when it was not there.
 */
export async function deleteRule(ctx: HostContext, bin: string, rule: RuleSpec): Promise<boolean> {
  const r = await ipt(ctx, bin, rule.table, ["-D", rule.chain, ...rule.args], { allowFail: true });
  if (r.exitCode === 0) return true;
  assertAbsent(r);
  return false;
}

// A failed -C or -D: the rule is absent, or a real error (thrown). 1: no such rule (or, with nft,
// no such chain). 2 with these words: the chain or the jump target does not exist, so neither
// does the rule. Anything else is a real error.
function assertAbsent(r: { command: string; exitCode: number; stderr: string }): void {
  if (r.exitCode === 1) return;
  if (r.exitCode === 2 && /does not exist|No chain|Couldn't load target/i.test(r.stderr)) return;
  throw new Error(`${r.command} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

/** Whether iptables-restore reads the word as it is (no quoting needed: no space, quote or #). */
export const restoreWord = (a: string): boolean => /^[\w@%+=:,./!-]+$/.test(a);

/** The comment that marks every rule aplspawn adds, so a person reading iptables-save knows whose it is. */
export const ruleComment = (lab: string) => `aplspawn:${lab}`;

/** `-t table -A chain …args`, for titles, probe targets and messages. */
export function describeRule(rule: RuleSpec): string {
  return ["-t", rule.table, "-A", rule.chain, ...rule.args]
    .map((a) => (/^[\w@%+=:,./!-]+$/.test(a) ? a : `"${a}"`))
    .join(" ");
}
