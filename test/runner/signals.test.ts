// Signals and crashes against a real process running the synthetic workflow.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { setup } from "./synthetic.js";

const FIXTURE = resolve(import.meta.dirname, "fixture-cli.js");

function start(args: string[]): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  const child = spawn(process.execPath, [FIXTURE, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const done = new Promise<number | null>((r) =>
    child.on("exit", (code, sig) => r(code ?? (sig ? -1 : null))),
  );
  return { child, out: () => out, done };
}

async function waitFor(pred: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 500; i++) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const journal = async (lab: string) => ({
  entries: (await Journal.open(realHost(), journalPath(lab), "t", false)).entries(),
});

test("SIGINT while containers start: exit 130, rolled back once, nothing left", async () => {
  const t = await setup();
  try {
    const p = start(["up", t.world, t.lab, "10000"]);
    await waitFor(async () => (await t.files()).includes("c3.layer"), "containers to start");
    p.child.kill("SIGINT");
    assert.equal(await p.done, 130);
    assert.deepEqual(await t.files(), []);
    assert.equal((await journal(t.lab)).entries.length, 0);
    assert.equal(p.out().match(/UNDONE.*Creating a$/gm)?.length, 1, p.out());
  } finally {
    await t.cleanup();
  }
});

test("a second SIGINT exits at once with a valid journal; a later down cleans up", async () => {
  const t = await setup();
  try {
    const p = start(["up", t.world, t.lab, "10000"]);
    await waitFor(async () => (await t.files()).includes("c3.layer"), "containers to start");
    p.child.kill("SIGINT");
    p.child.kill("SIGINT");
    assert.equal(await p.done, 130);
    await journal(t.lab); // parses
    const d = start(["down", t.world, t.lab]);
    assert.equal(await d.done, 0, d.out());
    assert.deepEqual(await t.files(), []);
  } finally {
    await t.cleanup();
  }
});

test("SIGKILL mid-run leaves a valid journal; up resumes to completion, and down after a crash leaves nothing", async () => {
  const t = await setup();
  try {
    const p = start(["up", t.world, t.lab, "10000"]);
    await waitFor(
      async () => (await journal(t.lab).catch(() => ({ entries: [] }))).entries.length === 8,
      "3 intents",
    );
    p.child.kill("SIGKILL");
    await p.done;
    const j = await journal(t.lab);
    assert.equal(j.entries.length, 8, "5 done + 3 intents");
    const resume = start(["up", t.world, t.lab, "0"]);
    assert.equal(await resume.done, 0, resume.out());
    assert.match(resume.out(), /took over the lock/);
    assert.match(resume.out(), /stopped in the middle of/);
    assert.equal((await t.files()).length, 9);
    // Crash again, then down.
    const p2 = start(["down", t.world, t.lab]);
    assert.equal(await p2.done, 0, p2.out());
    assert.deepEqual(await t.files(), []);
    assert.equal((await journal(t.lab)).entries.length, 0);
  } finally {
    await t.cleanup();
  }
});
