// Status probes: read-only checks of the live host that `aplspawn status` runs and reports.
import type { HostContext } from "../host/host.js";
import { type RunContext, runScope } from "../host/run-scope.js";
import { detailOf, holds, type TaskStep } from "./task.js";

/** What a probe may use: the host, read only, and the status's run scope. */
export type ProbeContext = RunContext;

/** One status check: what it looks at and how. Probes only read. */
export interface Probe {
  /** What is checked, in the original tool's words, e.g. "Checking if bridge nspawnd0 exists". */
  name: string;
  /** The thing looked at (bridge name, loop device, container name…). */
  target: string;
  run(ctx: ProbeContext): Promise<{ ok: boolean; detail?: string }>;
}

/** A task step's own check as a status probe, for a kind that has a status line (else undefined). */
export function checkProbe(step: TaskStep): Probe | undefined {
  const line = step.def.status?.(step.params);
  if (!line) return undefined;
  return {
    ...line,
    async run(ctx) {
      const v = await step.def.check(ctx, step.params);
      const detail = detailOf(v);
      return { ok: holds(v), ...(detail ? { detail } : {}) };
    },
  };
}

/** A probe's outcome, as `status --json` prints it. */
export interface ProbeResult {
  name: string;
  target: string;
  ok: boolean;
  detail?: string;
}

/**
 * Run probes with bounded concurrency; results keep the probes' order. A probe that throws fails.
 * The probes are one run: they share a scope of their own (what one learns of the host, the others reuse).
 */
export async function runProbes(
  probes: readonly Probe[],
  host: HostContext,
  concurrency = 16,
): Promise<ProbeResult[]> {
  const ctx: ProbeContext = { ...host, ...runScope() };
  const results: ProbeResult[] = new Array(probes.length);
  let next = 0;
  const worker = async () => {
    while (next < probes.length) {
      const i = next++;
      const p = probes[i]!;
      try {
        const r = await p.run(ctx);
        results[i] = { name: p.name, target: p.target, ok: r.ok, ...(r.detail ? { detail: r.detail } : {}) };
      } catch (e) {
        results[i] = {
          name: p.name,
          target: p.target,
          ok: false,
          detail: e instanceof Error ? e.message : String(e),
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, probes.length) }, worker));
  return results;
}
