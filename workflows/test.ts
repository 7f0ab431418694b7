// test: Molecule's sequence on one lab, as the steps `aplspawn test` runs one after the other, each
// a workflow of its own (timed and reported as one JUnit testcase): destroy what an earlier run
// left, create, prepare, converge, idempotence, verify, destroy. Only composition: cli/commands/test.ts
// runs them, stops at the first failure and always destroys unless told to keep the lab. With
// --reuse-prepare the prepared state is kept as a snapshot (prepare's own step saves it): a later
// run with the same inputs creates the containers on it and reports prepare as reused; cleanup and
// destroy purge everything else of the lab, never that snapshot.
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import type { Workflow } from "../src/runner/task.js";
import { down } from "./down.js";
import { playbookWorkflow } from "./provision.js";
import { snapshotSaveWorkflow } from "./snapshot.js";
import type { WorkflowOptions } from "./types.js";
import { up } from "./up.js";

/** One step of the sequence: its name (the JUnit testcase's), and its workflow, built when it runs. */
export interface TestStep {
  name: "cleanup" | "create" | "prepare" | "converge" | "idempotence" | "verify" | "destroy";
  build(): Workflow;
  /** Not run: its effect is in this snapshot, which create started the containers on. */
  reused?: string;
}

/**
 * --reuse-prepare: the snapshot that keeps the prepared state, and whether it is there to be
 * reused (it fits the lab) or is to be saved by prepare.
 */
export interface PreparedState {
  snapshot: string;
  reuse: boolean;
}

/** The steps up to verify, in order; destroy is `destroyStep` (run whatever happened before). */
export function testSteps(c: Config, o: WorkflowOptions, kept?: PreparedState): TestStep[] {
  const p = c.provision;
  if (!p)
    throw new UsageError(
      "aplspawn test converges provision.playbook: the config has no provision section (docs/configuration.md)",
    );
  // Each playbook once; idempotence is converge's playbook once more, which must change nothing.
  const play = (name: TestStep["name"], playbook: string): TestStep => ({
    name,
    build: () =>
      playbookWorkflow(c, o, {
        name,
        playbook,
        idempotence: name === "idempotence",
        pass: name === "idempotence" ? "idempotence" : "once",
      }),
  });
  const reuse = kept?.reuse ? kept.snapshot : undefined;
  const prepare = (playbook: string): TestStep => {
    if (reuse) return { name: "prepare", reused: reuse, build: () => ({ name: "prepare", steps: [] }) };
    const step = play("prepare", playbook);
    if (!kept) return step;
    // The prepared state saved (the containers stop, are copied and start again) in the same step.
    return {
      name: "prepare",
      build: () => ({
        name: "prepare",
        steps: [...step.build().steps, ...snapshotSaveWorkflow(c, { ...o, snapshot: kept.snapshot }).steps],
      }),
    };
  };
  return [
    { name: "cleanup", build: () => down(c, fresh(o, reuse)) },
    { name: "create", build: () => up(c, reuse ? { ...o, fromSnapshot: reuse } : o) },
    ...(p.prepare ? [prepare(p.prepare)] : []),
    play("converge", p.playbook),
    ...(p.idempotence ? [play("idempotence", p.playbook)] : []),
    ...(p.verify ? [play("verify", p.verify)] : []),
  ];
}

/** The last step: the lab destroyed (`run down`), but for the snapshot of the prepared state. */
export const destroyStep = (c: Config, o: WorkflowOptions, keptSnapshot?: string): TestStep => ({
  name: "destroy",
  build: () => down(c, fresh(o, keptSnapshot)),
});

// Each test starts from the image, as Molecule's create does: down purges the containers' layers,
// keys, kept logs and snapshots, but keeps the downloaded image (a cache, not the lab's state) and
// the snapshot --reuse-prepare keeps.
const fresh = (o: WorkflowOptions, keepSnapshot?: string): WorkflowOptions => ({
  ...o,
  purge: true,
  keepImage: true,
  ...(keepSnapshot ? { keepSnapshot } : {}),
});
