// Signals and crashes against a real process running the synthetic workflow.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { realHost } from "../../src/host/real-host.js";
import { Journal, journalPath } from "../../src/runner/journal.js";
import { withWorld } from "../support/synthetic.js";
import { waitUntil } from "../support/wait.js";

const FIXTURE = resolve(import.meta.dirname, "../support/bin/synthetic-cli.js");

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

const journal = async (lab: string) => ({
  entries: (await Journal.open(realHost(), journalPath(lab), "t", false)).entries(),
});

// SIGHUP (a closed terminal or ssh session) is an interrupt like Ctrl-C.
for (const sig of ["SIGINT", "SIGHUP"] as const)
  test(`${sig} while containers start: exit 130, rolled back once, nothing left`, () =>
    withWorld(async (t) => {
      const p = start(["up", t.world, t.lab, "10000"]);
      await waitUntil(async () => (await t.files()).includes("c3.layer"), "containers to start");
      p.child.kill(sig);
      assert.equal(await p.done, 130, p.out());
      assert.deepEqual(await t.files(), []);
      assert.equal((await journal(t.lab)).entries.length, 0);
      assert.equal(p.out().match(/UNDONE.*Creating a$/gm)?.length, 1, p.out());
    }));

test("a second SIGINT exits at once with a valid journal; a later down cleans up", () =>
  withWorld(async (t) => {
    const p = start(["up", t.world, t.lab, "10000"]);
    await waitUntil(async () => (await t.files()).includes("c3.layer"), "containers to start");
    p.child.kill("SIGINT");
    p.child.kill("SIGINT");
    assert.equal(await p.done, 130);
    await journal(t.lab); // parses
    const d = start(["down", t.world, t.lab]);
    assert.equal(await d.done, 0, d.out());
    assert.deepEqual(await t.files(), []);
  }));

test("SIGKILL mid-run leaves a valid journal; up resumes to completion, and down after a crash leaves nothing", () =>
  withWorld(async (t) => {
    const p = start(["up", t.world, t.lab, "10000"]);
    await waitUntil(
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
  }));

// A terminal of its own (python3's pty): once c3.layer exists, the terminal is closed, so the
// kernel sends SIGHUP and every later write to it fails with EIO; prints the exit code and output.
const ON_A_TERMINAL = `
import json, os, pty, select, sys, time
marker, cmd = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
out, deadline = b"", time.time() + 120
while not os.path.exists(marker) and time.time() < deadline:
    if select.select([fd], [], [], 0.05)[0]:
        out += os.read(fd, 65536)
os.close(fd)
status = os.waitpid(pid, 0)[1]
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "out": out.decode(errors="replace")}))
`;

test("the terminal hangs up while containers start: the run rolls back to its end (its output lost), exit 130, nothing left", () =>
  withWorld(async (t) => {
    const r = await execa("python3", [
      "-c",
      ON_A_TERMINAL,
      join(t.world, "c3.layer"),
      process.execPath,
      FIXTURE,
      "up",
      t.world,
      t.lab,
      "10000",
    ]);
    const { code, out } = JSON.parse(r.stdout) as { code: number; out: string };
    assert.equal(code, 130, `exit ${code}: ${out}`);
    assert.deepEqual(await t.files(), []);
    assert.equal((await journal(t.lab)).entries.length, 0);
  }));
