// The network namespace of image.packages' builder, held by a process of ours (src/host/netns-holder.ts),
// for real: nothing appears under /run/netns (a named namespace is seen by every namespace of the
// host, and broke other tests' residue checks), the holder is in a namespace of its own, release
// ends it, and a recorded PID whose start time no longer matches (the PID was reused) is not signalled.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { holdNetns, netnsPath, releaseNetns } from "../../src/host/netns-holder.js";
import { procStat } from "../../src/host/proc.js";
import { realHost } from "../../src/host/real-host.js";
import { skip } from "../support/ns.js";
import { until } from "../support/wait.js";

const named = () => (existsSync("/run/netns") ? readdirSync("/run/netns").sort() : []);

test("a builder's network namespace is held by a process, named nowhere, and ends with release", {
  skip,
}, async () => {
  const host = realHost();
  const dir = await mkdtemp(join(tmpdir(), "aplspawn-netns-holder-"));
  const before = named();
  try {
    const h = await holdNetns(host, dir);
    assert.notEqual(readlinkSync(netnsPath(h)), readlinkSync("/proc/self/ns/net"), "a namespace of its own");
    assert.deepEqual(named(), before, "nothing named under /run/netns");
    await releaseNetns(host, dir);
    const gone = await until(10_000, 20, async () => {
      const st = await procStat(host, h.pid);
      return st === undefined || st.state === "Z" ? true : undefined;
    });
    assert.ok(gone, `the holder ${h.pid} ended`);
    assert.ok(!existsSync(join(dir, "netns-holder.json")), "its record is gone");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("release never signals a reused PID (start time differs)", { skip }, async () => {
  const host = realHost();
  const dir = await mkdtemp(join(tmpdir(), "aplspawn-netns-holder-"));
  const other = spawn("sleep", ["60"], { stdio: "ignore" });
  try {
    const pid = other.pid ?? 0;
    const st = await procStat(host, pid);
    assert.ok(st);
    writeFileSync(join(dir, "netns-holder.json"), JSON.stringify({ pid, start: st.start - 1 }));
    await releaseNetns(host, dir);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(other.exitCode, null, "the process with the recorded PID but another start time still runs");
    assert.equal(other.signalCode, null);
  } finally {
    other.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});
