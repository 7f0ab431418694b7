// Runs one task's run, then its rollback on a host where the very thing the rollback undoes
// vanishes on its own right before the undoing command (the kernel frees an autoclear loop device,
// a mount goes with its namespace, someone deletes the bridge): the race between a rollback's look
// and its act, made deterministic. Only acts when started with --aplspawn-vanish (the test runner
// loads every file under test/).
import { join } from "node:path";
import { errorMessage } from "../../../src/errors.js";
import type { ExecOptions, Host } from "../../../src/host/host.js";
import { realHost } from "../../../src/host/real-host.js";
import { runContext } from "../../../src/host/run-scope.js";
import type { AnyTaskDef, TaskContext } from "../../../src/runner/task.js";
import { containerOverlay } from "../../../tasks/container/overlay.js";
import { imageLoop } from "../../../tasks/image/loop.js";
import { imageLower } from "../../../tasks/image/lower.js";
import { bridgeTask } from "../../../tasks/net/bridge.js";
import { bridgeAddressTask } from "../../../tasks/net/bridge-address.js";
import { bridgeUpTask } from "../../../tasks/net/bridge-up.js";
import { chainTask } from "../../../tasks/net/iptables-chain.js";

type Argv = [string, string[]];

/** One scenario: the tasks to run (in order), which one's rollback races, and the race. */
interface Scenario {
  steps: [AnyTaskDef, unknown][];
  /** The undoing command of the racing rollback: match it by its argv. */
  when(cmd: string, args: readonly string[]): boolean;
  /** What vanishes it first (run for real, once). */
  vanish(cmd: string, args: readonly string[]): Argv[];
}

function scenarios(dir: string, image: string): Record<string, Scenario> {
  const lowerDir = join(dir, "lower");
  const br = "vnsh0";
  const same = (cmd: string, args: readonly string[]): Argv[] => [[cmd, [...args]]];
  return {
    "image.loop": {
      steps: [[imageLoop, { image, lowerDir }]],
      when: (c, a) => c === "losetup" && a[0] === "--detach",
      vanish: same,
    },
    "image.lower": {
      steps: [
        [imageLoop, { image, lowerDir }],
        [imageLower, { image, lowerDir }],
      ],
      when: (c) => c === "umount",
      vanish: same,
    },
    "container.overlay": {
      steps: [
        [
          containerOverlay,
          {
            name: "v",
            lower: join(dir, "tree"),
            upper: join(dir, "upper"),
            work: join(dir, "work"),
            merged: join(dir, "merged"),
          },
        ],
      ],
      when: (c) => c === "umount",
      vanish: same,
    },
    "net.bridge": {
      steps: [[bridgeTask, { bridge: br }]],
      when: (c, a) => c === "ip" && a[1] === "del",
      vanish: same,
    },
    "net.bridge.up": {
      steps: [
        [bridgeTask, { bridge: br }],
        [bridgeUpTask, { bridge: br }],
      ],
      when: (c, a) => c === "ip" && a.at(-1) === "down",
      vanish: () => [["ip", ["link", "del", "dev", br]]],
    },
    "net.bridge.address": {
      steps: [
        [bridgeTask, { bridge: br }],
        [bridgeAddressTask, { bridge: br, address: "10.251.0.1/24" }],
      ],
      when: (c, a) => c === "ip" && a[0] === "addr" && a[1] === "del",
      vanish: same,
    },
    "net.iptables.chain": {
      steps: [[chainTask, { table: "filter", chain: "VNSH" }]],
      when: (c, a) => c === "iptables" && a.includes("-F"),
      vanish: () => [["iptables", ["-w", "-t", "filter", "-X", "VNSH"]]],
    },
  };
}

/** A host whose matching command is preceded, once, by the vanishing commands. */
function racingHost(real: Host, s: Scenario): { host: Host; fired: () => number } {
  let fired = 0;
  const exec = async (cmd: string, args: readonly string[], opts?: ExecOptions) => {
    if (fired === 0 && s.when(cmd, args)) {
      fired++;
      for (const [c, a] of s.vanish(cmd, args)) await real.exec(c, a);
    }
    return real.exec(cmd, args, opts);
  };
  return { host: { ...real, exec }, fired: () => fired };
}

const ctxOf = (host: Host): TaskContext => ({
  ...runContext(host),
  tty: false,
  info: () => undefined,
  progress: () => undefined,
});

async function main(name: string, dir: string, image: string): Promise<void> {
  const s = scenarios(dir, image)[name];
  if (!s) throw new Error(`no scenario ${name}`);
  const real = realHost();
  const done: { def: AnyTaskDef; params: unknown; intent: unknown; result: unknown }[] = [];
  for (const [def, params] of s.steps) {
    const intent = def.prepare ? await def.prepare(ctxOf(real), params) : undefined;
    done.push({ def, params, intent, result: await def.run(ctxOf(real), params, intent) });
  }
  // Newest first, as the runner undoes; only the last step's rollback races.
  const racing = racingHost(real, s);
  let error: string | undefined;
  for (const [i, d] of done.reverse().entries()) {
    const host = i === 0 ? racing.host : real;
    try {
      await d.def.rollback?.(ctxOf(host), { params: d.params, intent: d.intent, result: d.result });
    } catch (e) {
      error ??= `${d.def.kind}: ${errorMessage(e)}`;
    }
  }
  process.stdout.write(`${JSON.stringify({ fired: racing.fired(), error: error ?? null })}\n`);
}

/**
 * A lab's image.loop rollback after its image.lower handed the device to the kernel (autoclear) and
 * unmounted it: by then another lab may have attached the same image and got the same device name.
 * Prints whether that other lab's device survived the rollback.
 */
async function reuse(dir: string, image: string): Promise<void> {
  const real = realHost();
  const ctx = ctxOf(real);
  const lowerDir = join(dir, "lower");
  const params = { image, lowerDir };
  const loop = await imageLoop.run(ctx, params, undefined);
  const lower = await imageLower.run(ctx, params, { createdDir: true });
  await imageLower.rollback?.(ctx, { params, intent: { createdDir: true }, result: lower });
  // Another lab attaches the same image now: the kernel hands out the lowest free name, the one just freed.
  const other = (await real.exec("losetup", ["--find", "--show", "--read-only", image])).stdout.trim();
  let error: string | null = null;
  try {
    await imageLoop.rollback?.(ctx, { params, intent: undefined, result: loop });
  } catch (e) {
    error = errorMessage(e);
  }
  // Every bound device (naming one that is unbound still prints its name).
  const bound = (await real.exec("losetup", ["--list", "--noheadings", "-O", "NAME"])).stdout.split("\n");
  await real.exec("losetup", ["--detach", other], { allowFail: true });
  const mine = loop.device;
  process.stdout.write(
    `${JSON.stringify({ same: mine === other, otherSurvived: bound.map((l) => l.trim()).includes(other), error })}\n`,
  );
}

if (process.argv[2] === "--aplspawn-reuse") {
  reuse(process.argv[3] ?? "", process.argv[4] ?? "").catch((e: unknown) => {
    process.stderr.write(`vanish: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  });
}

if (process.argv[2] === "--aplspawn-vanish") {
  main(process.argv[3] ?? "", process.argv[4] ?? "", process.argv[5] ?? "").catch((e: unknown) => {
    process.stderr.write(`vanish: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  });
}
