// `aplspawn test`: Molecule's sequence on a lab (workflows/test.ts gives the steps), each step a
// run of its own, timed; the first failure skips the rest, and the lab is destroyed whatever
// happened unless kept. Several labs (several -c, or --all for scenarios/*/aplspawn.yaml) run side
// by side, each on names and a subnet of its own (cli/scenarios.ts). One JUnit report for all.
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { ExitError, errorMessage, InterruptedError, UsageError } from "../../src/errors.js";
import type { JUnitCase, JUnitSuite } from "../../src/runner/junit.js";
import { type OutputMode, printable, type RunEvent, renderEvent } from "../../src/runner/report.js";
import type { PreparedState, TestStep } from "../../workflows/test.js";
import type { LoadedConfig } from "../config-file.js";
import { type CliContext, type CommandAdder, type GlobalOptions, globals, withExamples } from "../context.js";
import { ansibleAccount, mayUse, ownerOf } from "../lab-access.js";

interface TestOptions {
  junit?: string;
  keep?: boolean;
  keepOnFailure?: boolean;
  all?: boolean;
  ansibleUser?: string;
  reusePrepare?: boolean;
}

/** How one lab's test went: its JUnit suite, and whether every step passed. */
interface LabResult {
  suite: JUnitSuite;
  ok: boolean;
}

const seconds = (ms: number) => Math.round(ms) / 1000;

// What a step printed, kept for its testcase's failure: the lines a plain run shows.
function keeper(): { onEvent: (e: RunEvent) => void; text: () => string } {
  const lines: string[] = [];
  return {
    onEvent: (e) => {
      const l = renderEvent("plain", e);
      if (l !== undefined) lines.push(l);
    },
    // The end says why; a JUnit viewer shows the whole of it.
    text: () => printable(lines.slice(-400).join("\n")),
  };
}

/** The one line that says what failed: the task's own error (the failing task and host, when Ansible named them). */
function failureMessage(e: unknown): string {
  const cause = e instanceof Error && e.cause !== undefined ? e.cause : e;
  return errorMessage(cause);
}

/**
 * --reuse-prepare: the snapshot that keeps this lab's prepared state (named by a hash of what
 * prepare depends on), and whether one of that name is there and fits the lab as it is now.
 */
async function preparedState(
  cli: CliContext,
  config: LoadedConfig["config"],
): Promise<PreparedState & { why: string }> {
  const [
    { prepareInputs, prepareSnapshotName },
    { listSnapshots },
    { snapshotsDir },
    { containerSpecs },
    { prepareParams },
  ] = await Promise.all([
    import("../../src/lab/prepare-key.js"),
    import("../../src/lab/snapshots.js"),
    import("../../config/paths.js"),
    import("../../config/containers.js"),
    import("../../workflows/lab-params.js"),
  ]);
  if (config.containers.privateUsers)
    throw new UsageError(
      "--reuse-prepare keeps the prepared state as a snapshot: snapshots are not made of containers with containers.privateUsers (yet)",
    );
  const inputs = await prepareInputs(cli.io.host, prepareParams(config));
  if (!inputs) throw new Error("--reuse-prepare without provision.prepare");
  const snapshot = prepareSnapshotName(inputs.hash);
  const snap = (await listSnapshots(cli.io.host, snapshotsDir(config))).find((s) => s.name === snapshot);
  if (!snap) return { snapshot, reuse: false, why: "no snapshot of the prepared state for these inputs yet" };
  const { snapshotMisfit } = await import("./snapshot.js");
  const misfit = await snapshotMisfit(cli.io.host, config, snap, containerSpecs(config));
  return misfit
    ? { snapshot, reuse: false, why: misfit }
    : { snapshot, reuse: true, why: `snapshot ${snapshot} holds the state prepare left` };
}

/**
 * Before a lab's test changes anything: who runs Ansible (the lab's owner, else the unprivileged
 * account; never root), that they may use the lab, that every playbook of the sequence exists and
 * parses (exit 2), and the lab's record in the index (as root).
 */
async function testPreflight(cli: CliContext, loaded: LoadedConfig, o: TestOptions) {
  const { io } = cli;
  const { config } = loaded;
  const { requirePlaybook } = await import("../config-file.js");
  const owner = await ownerOf(io, undefined, dirname(resolve(config.inventory.file)));
  const ansibleUser = owner ? undefined : await ansibleAccount(io, o.ansibleUser);
  const who = { ...(owner ? { owner } : {}), ...(ansibleUser ? { ansibleUser } : {}) };
  await mayUse(io, loaded, who, true);
  const p = config.provision;
  if (!p)
    throw new UsageError(`${loaded.file}: aplspawn test converges provision.playbook; the config has none`);
  for (const playbook of [p.prepare, p.playbook, p.verify])
    if (playbook)
      await requirePlaybook(
        io.host,
        loaded.file,
        { ...config, provision: { ...p, playbook } },
        owner ?? ansibleUser,
      );
  if (io.host.uid() === 0) {
    const { recordLab } = await import("../../src/lab/registry.js");
    await recordLab(io.host, config, loaded.file, {
      ...(owner ? { owner: owner.name } : {}),
      cwd: process.cwd(),
    });
  }
  return { who, p };
}

/** Run one lab's sequence; never throws for a failed step (an interrupt does). */
async function testLab(
  cli: CliContext,
  loaded: LoadedConfig,
  g: GlobalOptions,
  o: TestOptions,
  side: { prefix?: string; mode?: OutputMode },
): Promise<LabResult> {
  const { io } = cli;
  const { config } = loaded;
  const { testSteps, destroyStep } = await import("../../workflows/test.js");
  const { who, p } = await testPreflight(cli, loaded, o);
  // --reuse-prepare: decided before cleanup, which keeps a snapshot that fits and purges any other.
  const kept = o.reusePrepare && p.prepare ? await preparedState(cli, config) : undefined;
  const mode = side.mode ?? cli.mode(g);
  const say = (text: string, json: object) => {
    if (mode === "json")
      io.out(`${JSON.stringify({ ts: new Date().toISOString(), lab: config.lab, ...json })}\n`);
    else if (!g.quiet || (json as { ok?: boolean }).ok === false) io.out(`${side.prefix ?? ""}${text}\n`);
  };
  if (mode !== "json" && !g.quiet) io.out(`${side.prefix ?? ""}‣ [ INFO ] test: ${cli.whichLab(loaded)}\n`);
  if (o.reusePrepare && mode !== "json" && !g.quiet)
    io.out(
      `${side.prefix ?? ""}‣ [ INFO ] ${kept ? (kept.reuse ? `prepare is reused: ${kept.why}` : `prepare runs and is kept as snapshot ${kept.snapshot}: ${kept.why}`) : "--reuse-prepare: this lab has no provision.prepare, nothing to keep"}\n`,
    );

  const cases: JUnitCase[] = [];
  let failed: string | undefined;
  const runStep = async (step: TestStep) => {
    const kept = keeper();
    say(`‣ [ TEST ] ${step.name}`, { event: "test-step", step: step.name, state: "running" });
    const start = performance.now();
    try {
      await cli.run(step.build(), config, g, {
        command: `aplspawn test (${step.name})`,
        onEvent: kept.onEvent,
        ...(side.prefix ? { prefix: side.prefix } : {}),
        ...(side.mode ? { mode: side.mode } : {}),
      });
      const time = seconds(performance.now() - start);
      cases.push({ name: step.name, time });
      say(`‣ [ PASS ] ${step.name} (${time.toFixed(1)} s)`, {
        event: "test-step",
        step: step.name,
        ok: true,
        seconds: time,
      });
    } catch (e) {
      if (e instanceof InterruptedError) throw e;
      const time = seconds(performance.now() - start);
      const message = failureMessage(e);
      cases.push({ name: step.name, time, failure: { message, output: kept.text() } });
      failed ??= step.name;
      say(`‣ [ FAIL ] ${step.name} (${time.toFixed(1)} s): ${message}`, {
        event: "test-step",
        step: step.name,
        ok: false,
        seconds: time,
        error: message,
      });
    }
  };
  for (const step of testSteps(config, who, kept)) {
    if (failed) {
      cases.push({ name: step.name, time: 0, skipped: `${failed} failed` });
      continue;
    }
    if (step.reused) {
      const note = `reused: prepare did not run; create started the containers on snapshot ${step.reused}, the state an earlier prepare left`;
      cases.push({ name: step.name, time: 0, note });
      say(`‣ [ PASS ] ${step.name}: ${note}`, {
        event: "test-step",
        step: step.name,
        ok: true,
        seconds: 0,
        reused: step.reused,
      });
      continue;
    }
    await runStep(step);
    const last = cases.at(-1);
    if (kept && step.name === "prepare" && last && !last.failure)
      last.note = `kept as snapshot ${kept.snapshot}: the next aplspawn test --reuse-prepare with the same inputs starts from it`;
  }
  const keep = o.keep === true || (o.keepOnFailure === true && failed !== undefined);
  if (keep) cases.push({ name: "destroy", time: 0, skipped: o.keep ? "--keep" : "--keep-on-failure" });
  else await runStep(destroyStep(config, who, kept?.snapshot));
  const ok = failed === undefined && cases.every((c) => !c.failure);
  const summary = closingSummary(cases, ok, keep, kept, loaded);
  say(summary.text, summary.json);
  return { suite: { name: config.lab, cases }, ok };
}

/** The closing line of a lab's test: each step and its time, the prepared state, a kept lab. */
function closingSummary(
  cases: JUnitCase[],
  ok: boolean,
  keep: boolean,
  kept: { snapshot: string; reuse: boolean } | undefined,
  loaded: LoadedConfig,
): { text: string; json: object } {
  const { config } = loaded;
  const reused = kept?.reuse === true && !cases.some((c) => c.name === "prepare" && c.skipped !== undefined);
  const steps = cases.map((c) => ({
    step: c.name,
    state: c.failure
      ? "failed"
      : c.skipped !== undefined
        ? "skipped"
        : c.name === "prepare" && reused
          ? "reused"
          : "passed",
    seconds: c.time,
  }));
  // Whether the prepared state is there for the next run: reused, or saved by a prepare that passed.
  const saved = reused || steps.some((s) => s.step === "prepare" && s.state === "passed");
  const snapshotNote =
    kept && saved
      ? `; prepare ${reused ? "reused" : "kept as"} snapshot ${kept.snapshot}${keep ? "" : " (kept after destroy; aplspawn snapshot delete removes it)"}`
      : "";
  return {
    text: `‣ [ ${ok ? "PASS" : "FAIL"} ] test of lab ${config.lab}: ${steps.map((s) => `${s.step} ${s.state === "passed" ? `${s.seconds.toFixed(1)} s` : s.state}`).join(", ")}${snapshotNote}${keep ? `; the lab is kept (sudo aplspawn -c ${loaded.file} run down --purge removes it)` : ""}`,
    json: {
      event: "test",
      ok,
      steps,
      kept: keep,
      ...(kept && saved ? { prepared: { snapshot: kept.snapshot, reused } } : {}),
    },
  };
}

/** The config files named by -c (each one; commander keeps only the last of a global option). */
function configArgs(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i] ?? "";
    if (a === "--") break;
    if ((a === "-c" || a === "--config") && raw[i + 1] !== undefined) out.push(raw[++i] as string);
    else if (a.startsWith("--config=")) out.push(a.slice("--config=".length));
    else if (/^-c./.test(a)) out.push(a.slice(2));
  }
  return out;
}

/** `aplspawn test`: its options, and each lab's run side by side. */
export const testCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("test"), [
    "sudo aplspawn test --junit report.xml",
    "sudo aplspawn test --all --junit report.xml",
    "sudo aplspawn test -c a.yaml -c b.yaml --keep-on-failure",
    "sudo aplspawn test --reuse-prepare   # the next run starts from the state prepare left",
  ])
    .description(
      "Molecule's sequence on the lab: destroy what is left, create, prepare, converge, idempotence, verify, destroy",
    )
    .option("--junit <file>", "write a JUnit XML report here (one testcase per step, a suite per lab)")
    .option("--keep", "leave the lab up at the end (run down --purge removes it)")
    .option("--keep-on-failure", "leave the lab up when a step failed, to look at it")
    .option("--all", "every scenario, scenarios/*/aplspawn.yaml, each its own lab, side by side")
    .option(
      "--reuse-prepare",
      "keep the state after prepare as a snapshot; a later run with the same prepare inputs starts from it instead of running prepare",
    )
    .option(
      "--ansible-user <user>",
      "a lab without owner: the unprivileged account Ansible runs as (default: aplspawn)",
    )
    .action(async (o: TestOptions, cmd: Command) => {
      const g = globals(cmd);
      const { io } = cli;
      const files = configArgs((program as unknown as { rawArgs: string[] }).rawArgs);
      if (o.all && files.length > 0)
        throw new UsageError("--all runs scenarios/*/aplspawn.yaml: give it or -c, not both");
      if (o.keep && o.keepOnFailure)
        throw new UsageError("--keep keeps the lab whatever happens: --keep-on-failure adds nothing");
      let labs: LoadedConfig[];
      if (o.all || files.length > 1) {
        const { scenarioConfigs } = await import("../scenarios.js");
        labs = await scenarioConfigs(cli, g, o.all ? undefined : files);
      } else labs = [await cli.loadFile(g, { interfaces: true })];
      if (o.reusePrepare && !labs.some((l) => l.config.provision?.prepare))
        throw new UsageError(
          `--reuse-prepare keeps the state provision.prepare leaves: ${labs.map((l) => l.file).join(", ")} ${labs.length > 1 ? "have" : "has"} no provision.prepare`,
        );
      const side = labs.length > 1;
      const results = await Promise.all(
        labs.map((l) =>
          testLab(
            cli,
            l,
            g,
            o,
            side ? { prefix: `[${l.config.lab}] `, mode: cli.mode(g) === "json" ? "json" : "plain" } : {},
          ),
        ),
      );
      if (o.junit) {
        const { junitXml } = await import("../../src/runner/junit.js");
        await io.host.fs.writeFile(resolve(o.junit), junitXml(results.map((r) => r.suite)), 0o644);
      }
      const failedLabs = results.filter((r) => !r.ok).map((r) => r.suite.name);
      if (failedLabs.length > 0)
        throw new ExitError(
          `test failed: ${failedLabs.map((l) => `lab ${l}`).join(", ")}${o.junit ? ` (report: ${o.junit})` : ""}`,
        );
    });
