// test: Molecule's sequence on one lab, as the steps `aplspawn test` runs one after the other, each
// a workflow of its own (timed and reported as one JUnit testcase): destroy what an earlier run
// left, create, prepare, converge, idempotence, verify, destroy. Only composition: cli/test-command.ts
// runs them, stops at the first failure and always destroys unless told to keep the lab.
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import type { Workflow } from "../src/runner/task.js";
import { down } from "./down.js";
import { playbookWorkflow } from "./provision.js";
import type { WorkflowOptions } from "./types.js";
import { up } from "./up.js";

/** One step of the sequence: its name (the JUnit testcase's), and its workflow, built when it runs. */
export interface TestStep {
  name: "cleanup" | "create" | "prepare" | "converge" | "idempotence" | "verify" | "destroy";
  build(): Workflow;
}

/** The steps up to verify, in order; destroy is `destroyStep` (run whatever happened before). */
export function testSteps(c: Config, o: WorkflowOptions): TestStep[] {
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
  return [
    { name: "cleanup", build: () => down(c, fresh(o)) },
    { name: "create", build: () => up(c, o) },
    ...(p.prepare ? [play("prepare", p.prepare)] : []),
    play("converge", p.playbook),
    ...(p.idempotence ? [play("idempotence", p.playbook)] : []),
    ...(p.verify ? [play("verify", p.verify)] : []),
  ];
}

/** The last step: the lab destroyed (`run down`). */
export const destroyStep = (c: Config, o: WorkflowOptions): TestStep => ({
  name: "destroy",
  build: () => down(c, fresh(o)),
});

// Each test starts from the image, as Molecule's create does: down purges the containers' layers,
// keys and kept logs, but keeps the downloaded image (a cache, not the lab's state).
const fresh = (o: WorkflowOptions): WorkflowOptions => ({ ...o, purge: true, keepImage: true });
