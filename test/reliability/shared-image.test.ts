// Labs of one image attaching and releasing at once (issue #29, item 1): four labs, each in its own
// namespace as the suite's tests are, attach the same image file and release it, round after round,
// while each also runs the suite's own cleanup after a lab test (fault-lab's detachOrphans, over the
// loop device names its runs printed), as lab tests ending beside each other do. Loop numbers are
// handed out again at once, so a name one lab printed is soon another lab's device, attached and
// claimed but not mounted yet. Every attach must mount the device it attached, every release must
// succeed, and nothing may be left. The runs log every loop event (APLSPAWN_DEBUG=loops); a failure
// shows the events of the devices involved, in time order, from every lab.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CLAIMS_DIR } from "../../src/image/loop-claims.js";
import { detachOrphans } from "../support/fault-lab.js";
import {
  detachLoopsUnder,
  drive,
  loopsOf,
  makeDisk,
  makeSquashfs,
  makeTree,
  writeConfig,
} from "../support/image.js";
import { isRoot, type NsResult, skip, TestNamespace, tempDir } from "../support/ns.js";

const LABS = 4;
const ROUNDS = 5;
const CLEANUPS = 4;

let tmp: { path: string; cleanup(): Promise<void> };
let image = "";

before(async () => {
  if (!isRoot) return;
  tmp = await tempDir("aplspawn-shared-");
  const tree = await makeTree(join(tmp.path, "tree"), "shared-image");
  image = await makeDisk(
    await makeSquashfs(tree, join(tmp.path, "root.squashfs")),
    join(tmp.path, "shared.img"),
    {
      table: "gpt",
    },
  );
});

after(async () => {
  if (!isRoot) return;
  const left = await detachLoopsUnder(tmp.path);
  await tmp.cleanup();
  assert.deepEqual(left, [], "loop devices were left behind");
});

/** One loop event: a debug line of a run (src/image/loop-debug.ts), or one of this test's. */
interface Event {
  ts: string;
  event: string;
  lab?: string;
  device?: string;
  [k: string]: unknown;
}

const DEBUG = "aplspawn debug loops: ";
const eventsOf = (r: NsResult): Event[] =>
  r.stderr
    .split("\n")
    .filter((l) => l.startsWith(DEBUG))
    .map((l) => JSON.parse(l.slice(DEBUG.length)) as Event);

test("labs of one image attaching and releasing at once never take each other's loop device", {
  skip,
}, async () => {
  const labs = await Promise.all(
    Array.from({ length: LABS }, async (_, i) => {
      const dir = await mkdtemp(join(tmp.path, `lab${i}-`));
      const name = `sh${i}`;
      const ns = await TestNamespace.create();
      const config = await writeConfig(dir, { url: `file://${image}` }, name);
      return { i, dir, ns, config, lower: join(dir, "work", name, "lower"), before: await ns.snapshot() };
    }),
  );
  const events: Event[] = [];
  const failures: string[] = [];
  const seen = labs.map(() => new Set<string>());
  const mountsLeft: string[] = [];
  // The loop events of `devices` from every lab, in time order, from a little before `from`.
  const story = (devices: string[], from: number, to: number) =>
    events
      .filter((e) => e.device !== undefined && devices.includes(e.device))
      .filter((e) => Date.parse(e.ts) >= from - 5000 && Date.parse(e.ts) <= to + 1000)
      .sort((x, y) => x.ts.localeCompare(y.ts))
      .map((e) => `  ${JSON.stringify(e)}`)
      .join("\n");
  const run = async (l: (typeof labs)[number], action: "attach" | "detach", what: string) => {
    const from = Date.now();
    const r = await drive(l.ns, action, l.config, { APLSPAWN_DEBUG: "loops" });
    events.push(...eventsOf(r));
    const attached = [...r.stdout.matchAll(/→ (\/dev\/loop\d+)/g)].map((m) => m[1]!);
    for (const d of attached) seen[l.i]!.add(d);
    const mounted = /(\/dev\/loop\d+) mounted read-only at /.exec(r.stdout)?.[1];
    const wrong =
      r.exitCode !== 0
        ? `exit ${r.exitCode}`
        : action === "attach" && (attached.length !== 1 || mounted !== attached[0])
          ? `attached ${attached.join(", ")}, mounted ${mounted}`
          : undefined;
    if (wrong) {
      const devices = [...new Set(`${r.stdout}${r.stderr}`.match(/\/dev\/loop\d+/g) ?? [])];
      const out = r.stderr
        .split("\n")
        .filter((x) => !x.startsWith(DEBUG))
        .join("\n");
      failures.push(
        `${what}: ${wrong}\n${r.stdout}${out}\nthe loop events of ${devices.join(", ")}, every lab's, in time order:\n${story(devices, from, Date.now())}`,
      );
    }
  };
  try {
    await Promise.all(
      labs.map(async (l) => {
        for (let round = 1; round <= ROUNDS; round++) {
          await run(l, "attach", `lab ${l.i}, round ${round}: attach`);
          await run(l, "detach", `lab ${l.i}, round ${round}: detach`);
          // The lab "test" ends: its cleanup, over the names its runs printed, while the others run
          // on (a few passes: lab tests end one after another all through a suite's run).
          for (let pass = 0; pass < CLEANUPS; pass++)
            for (const dev of seen[l.i]!)
              if ((await detachOrphans(l, [dev], image)).length > 0)
                events.push({
                  ts: new Date().toISOString(),
                  event: "test-cleanup-detached",
                  lab: `sh${l.i}`,
                  device: dev,
                });
        }
      }),
    );
    for (const l of labs)
      if ((await l.ns.snapshot()).mounts !== l.before.mounts) mountsLeft.push(`lab ${l.i}`);
  } finally {
    for (const l of labs) await l.ns.destroy().catch(() => undefined);
  }
  assert.equal(failures.length, 0, failures.join("\n\n"));
  // Nothing left: no device of the image, no claim or record of a lab, no mount in a namespace.
  assert.deepEqual(await loopsOf(image), [], "loop devices of the image are left");
  const claims = await readdir(CLAIMS_DIR).catch(() => [] as string[]);
  const ours = [];
  for (const c of claims)
    if ((await readFile(join(CLAIMS_DIR, c), "utf8").catch(() => "")).includes(tmp.path)) ours.push(c);
  assert.deepEqual(ours, [], "loop claims of the labs are left");
  assert.deepEqual(mountsLeft, [], "mounts are left in the labs' namespaces");
  for (const l of labs)
    assert.equal(existsSync(`${l.lower}.loop`), false, `lab ${l.i}: its loop record is left`);
  assert.ok(
    events.some((e) => e.event === "handover"),
    "the runs logged their loop events (APLSPAWN_DEBUG=loops)",
  );
});
