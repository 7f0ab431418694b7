// The network checks of `aplspawn status`: the original tool's four (bridge exists, has its
// address, is up, forwarding on) plus our chains and every rule and jump. They reuse the tasks'
// checks, so status and netup agree on what "present" means.
import type { Config } from "../../config/schema.js";
import { describeRule } from "../../src/net/iptables.js";
import type { Probe, ProbeContext } from "../../src/runner/probe.js";
import type { TaskContext } from "../../src/runner/task.js";
import { bridgeTask } from "../net/bridge.js";
import { bridgeAddressTask } from "../net/bridge-address.js";
import { bridgeUpTask } from "../net/bridge-up.js";
import { IP_FORWARD, readIpForward } from "../net/forwarding.js";
import { chainTask } from "../net/iptables-chain.js";
import { ruleTask } from "../net/iptables-rule.js";
import { netPlan, type PlannedRule } from "../net/plan.js";

const taskContext = (ctx: ProbeContext): TaskContext => ({
  host: ctx.host,
  signal: ctx.signal,
  tty: false,
  info: () => undefined,
  progress: () => undefined,
});

/** The net checks of `aplspawn status`. */
export const netProbes = (c: Config): Probe[] => {
  const p = netPlan(c);
  const { bridge } = p.bridge;
  const rule = (r: PlannedRule): Probe => ({
    name: `Checking if iptables rule is present: ${r.params.title}`,
    target: describeRule(r.params.rule),
    run: async (ctx) =>
      (await ruleTask.check(taskContext(ctx), r.params))
        ? { ok: true }
        : { ok: false, detail: "iptables -C finds no such rule" },
  });
  const chain = (table: "filter" | "nat", name: string): Probe => ({
    name: `Checking if iptables chain ${name} exists in table ${table}`,
    target: `-t ${table} -N ${name}`,
    run: async (ctx) =>
      (await chainTask.check(taskContext(ctx), { table, chain: name }))
        ? { ok: true }
        : { ok: false, detail: `no chain ${name} in iptables -t ${table} -S` },
  });
  const probes: Probe[] = [
    {
      name: `Checking if bridge ${bridge} exists`,
      target: bridge,
      run: async (ctx) => ({ ok: await bridgeTask.check(taskContext(ctx), p.bridge) }),
    },
    {
      name: `Checking if bridge has IP ${p.address.address} assigned`,
      target: bridge,
      run: async (ctx) => ({ ok: await bridgeAddressTask.check(taskContext(ctx), p.address) }),
    },
    {
      name: `Checking if bridge ${bridge} is up`,
      target: bridge,
      run: async (ctx) => ({ ok: await bridgeUpTask.check(taskContext(ctx), p.bridge) }),
    },
    {
      name: `Checking if traffic forwarding is enabled ${IP_FORWARD}`,
      target: IP_FORWARD,
      run: async (ctx) => {
        const v = await readIpForward(ctx);
        return { ok: v === "1", ...(v === "1" ? {} : { detail: `${IP_FORWARD} is ${v}` }) };
      },
    },
    chain("filter", p.filterChain.chain),
    ...p.filterRules.map(rule),
  ];
  if (p.nat) probes.push(chain("nat", p.nat.chain.chain), ...p.nat.rules.map(rule));
  return probes;
};
