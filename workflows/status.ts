// status: up's own checks, read-only, on the live host, in the original tool's words and order (the
// network, the image, then each container: its nspawn process first), with what only status looks
// at for each container (its leader, its host key, an ssh login).
import { containerSpecs } from "../config/containers.js";
import type { Config } from "../config/schema.js";
import { checkProbe, type Probe } from "../src/runner/probe.js";
import { type Step, type TaskStep, taskSteps } from "../src/runner/task.js";
import { containerProbes } from "../tasks/status/container.js";
import { up } from "./up.js";

/** The probes of some steps' checks (those with a status line), in the steps' order. */
export const stepProbes = (steps: readonly Step[]): Probe[] =>
  taskSteps(steps).flatMap((s) => checkProbe(s) ?? []);

// The original printed a container's machine first, then its overlay.
const nspawnFirst = (a: TaskStep, b: TaskStep) =>
  Number(b.def.kind === "container.nspawn") - Number(a.def.kind === "container.nspawn");

/** Every check of `aplspawn status`. */
export function statusProbes(c: Config): Probe[] {
  const steps = taskSteps(up(c, {}).steps);
  const own = containerProbes(c);
  return [
    ...stepProbes(steps.filter((s) => s.scope === undefined)),
    own.lab,
    ...containerSpecs(c).flatMap((spec) => [
      ...stepProbes(steps.filter((s) => s.scope === spec.name).sort(nspawnFirst)),
      ...own.of(spec.name),
    ]),
  ];
}
