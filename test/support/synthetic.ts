// A synthetic workflow for runner tests: each task creates one real file in a temp "world" directory,
// so every runner behaviour is proven on real files, a real journal and a real lock.
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { realHost } from "../../src/host/real-host.js";
import { Journal, recordOf } from "../../src/runner/journal.js";
import type { RunEvent, TaskEvent } from "../../src/runner/report.js";
import { type RunOptions, runWorkflow } from "../../src/runner/runner.js";
import {
  type AnyTaskDef,
  defineTask,
  group,
  type Step,
  task,
  undo,
  type Workflow,
} from "../../src/runner/task.js";
import { tempDir } from "./ns.js";

/** Parameters of a synthetic resource. */
export const fileParamsSchema = z.object({
  path: z.string(),
  /** ms spent in run before creating the file (to let other things happen meanwhile). */
  delayMs: z.number().optional(),
  /** ms spent in run after creating the file. */
  delayAfterMs: z.number().optional(),
  /** run throws (after delayMs) without creating anything. */
  failRun: z.boolean().optional(),
  /** rollback throws. */
  failRollback: z.boolean().optional(),
  /** ms spent in rollback. */
  rollbackDelayMs: z.number().optional(),
  /** rollback throws while this file exists (a resource that is busy for a while). */
  busyWhile: z.string().optional(),
  /** run asserts the journal on disk has every earlier task done and its own intent. */
  journalPath: z.string().optional(),
});
export type FileParams = z.infer<typeof fileParamsSchema>;
const fileResultSchema = z.object({ created: z.string() });

/** A task kind whose resource is one file. */
export const fileTask = defineTask({
  kind: "test.file",
  journaled: { params: fileParamsSchema, result: fileResultSchema },
  title: (p) => `Creating ${p.path.split("/").pop()}`,
  async check(ctx, p) {
    return ctx.host.fs.exists(p.path);
  },
  async run(ctx, p) {
    if (p.journalPath) {
      const entries = (await Journal.open(ctx.host, p.journalPath, "t", false)).entries();
      const mine = entries.find((e) => recordOf(e, { params: fileParamsSchema }).params.path === p.path);
      if (mine?.state !== "running") throw new Error(`intent for ${p.path} not on disk before run`);
      const notDone = entries.filter((e) => e !== mine && e.state !== "done");
      if (notDone.length) throw new Error(`earlier entries not done on disk: ${notDone.map((e) => e.id)}`);
    }
    if (p.delayMs) await ctx.host.sleep(p.delayMs, ctx.signal);
    if (p.failRun) throw new Error(`run of ${p.path} failed`);
    await ctx.host.fs.writeFile(p.path, "x");
    if (p.delayAfterMs) await ctx.host.sleep(p.delayAfterMs, ctx.signal);
    return { created: p.path };
  },
  async rollback(ctx, { params, result }) {
    if (params.rollbackDelayMs) await ctx.host.sleep(params.rollbackDelayMs);
    if (params.failRollback) throw new Error(`rollback of ${params.path} failed`);
    if (params.busyWhile && (await ctx.host.fs.exists(params.busyWhile)))
      throw new Error(`${params.path} is busy (held by ${params.busyWhile})`);
    // result is undefined when run never finished: find the file on the live host anyway.
    await ctx.host.fs.rm(result?.created ?? params.path);
  },
});

/** A task that only checks (no resource). */
export const probeTask = defineTask<{ ok: boolean }>({
  kind: "test.probe",
  title: () => "Probing",
  async check(_ctx, p) {
    return p.ok;
  },
  async run() {
    throw new Error("probe failed");
  },
});

/** The registry of synthetic kinds. */
export const registry = new Map<string, AnyTaskDef>([
  [fileTask.kind, fileTask],
  [probeTask.kind, probeTask],
]);

/** A lab workflow over files: a, b, then three "containers" concurrently, then z. */
export function labWorkflow(
  world: string,
  o: { perFile?: Partial<Record<string, Partial<FileParams>>>; containers?: number } = {},
): Workflow {
  const f = (name: string): Step =>
    task(fileTask, `file[${name}]`, { path: join(world, name), ...o.perFile?.[name] });
  const n = o.containers ?? 3;
  const containers = Array.from({ length: n }, (_, i) => `c${i + 1}`);
  return {
    name: "synthetic",
    steps: [
      f("a"),
      f("b"),
      group(
        "containers",
        "Containers",
        containers.map((c) => group(`container[${c}]`, c, [f(`${c}.layer`), f(`${c}.run`)])),
        n,
      ),
      f("z"),
    ],
  };
}

/** A workflow undoing everything journaled. */
export const downWorkflow: Workflow = {
  name: "down",
  steps: [undo("undo.all", "Undoing everything", () => true)],
};

/** A temp dir with a "world" for the synthetic files and a lab dir; `files()` lists the world. */
export async function setup() {
  const d = await tempDir();
  const world = join(d.path, "world");
  const lab = join(d.path, "lab");
  await mkdir(world);
  return { ...d, world, lab, files: async () => (await readdir(world)).sort() };
}

/** Run `fn` with a fresh world and lab directory (setup's), removed whatever happened. */
export async function withWorld<T>(fn: (t: Awaited<ReturnType<typeof setup>>) => Promise<T>): Promise<T> {
  const t = await setup();
  try {
    return await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** The task events among a run's events. */
export const taskEvents = (events: unknown[]) =>
  events.filter((e): e is TaskEvent => (e as TaskEvent).event === "task");

/** Run with sane defaults; collects events. */
export async function run(wf: Workflow, labDir: string, extra: Partial<RunOptions> = {}) {
  const events: RunEvent[] = [];
  try {
    const summary = await runWorkflow(wf, {
      host: realHost(),
      lab: "t",
      labDir,
      registry,
      mode: "json",
      emit: (e) => events.push(e),
      command: "test",
      ...extra,
    });
    return { summary, events, error: undefined as unknown };
  } catch (error) {
    return { summary: undefined, events, error };
  }
}
