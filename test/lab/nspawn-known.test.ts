// The container's nspawn a run remembers (src/lab/nspawn-procs.ts theNspawn): its later steps look
// at that very process rather than scan every process, and a remembered PID is trusted no further
// than the process it named: one that is not the host's systemd-nspawn with that container's argv
// (a PID reused by anything else, here a process named and argv'd like it) is never returned.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { procStat } from "../../src/host/proc.js";
import { realHost } from "../../src/host/real-host.js";
import { runContext } from "../../src/host/run-scope.js";
import { knowNspawn, theNspawn } from "../../src/lab/nspawn-procs.js";

const MACHINE = "nspknown1";
const DIR = "/nonexistent/aplspawn-nspawn-known/merged";

test("a remembered nspawn PID held by a forgery, or by a process of another start time, is not the container's", async () => {
  // exec -a: the process calls itself systemd-nspawn, with the very argv a real one would have.
  const fake = spawn(
    "bash",
    ["-c", `exec -a systemd-nspawn bash -c "sleep 30; true" --machine=${MACHINE} --directory=${DIR}`],
    { stdio: "ignore" },
  );
  try {
    const host = realHost();
    const pid = fake.pid!;
    let start: number | undefined;
    for (let i = 0; i < 100 && start === undefined; i++) {
      const argv = (await host.fs.readFile(`/proc/${pid}/cmdline`).catch(() => "")).split("\0");
      if (argv[0] === "systemd-nspawn") start = (await procStat(host, pid))?.start;
      else await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(start !== undefined, "the forgery did not start");
    const ctx = runContext(host);
    knowNspawn(ctx, MACHINE, DIR, { pid, start });
    assert.equal(
      await theNspawn(ctx, MACHINE, DIR),
      undefined,
      "a forged nspawn was taken for the container's",
    );
    const other = runContext(host);
    knowNspawn(other, MACHINE, DIR, { pid, start: start + 1 });
    assert.equal(await theNspawn(other, MACHINE, DIR), undefined);
  } finally {
    fake.kill("SIGKILL");
  }
});
