// Binds and limits without a lab: what the config makes of them (specs, bytes), the nspawn and
// systemd-run arguments, and where the limits go on this host's cgroups (read only).
import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBytes } from "../../config/binds.js";
import { containerSpecs } from "../../config/containers.js";
import { parseConfig } from "../../config/load.js";
import { realHost } from "../../src/host/real-host.js";
import { limitCgroups } from "../../src/lab/limits.js";
import { inScope } from "../../src/lab/machined.js";
import { nspawnArgs } from "../../tasks/container/nspawn.js";

test("binds: a set's add to the lab's, readOnly by default; limits: the set's over the lab's", () => {
  const c = parseConfig(
    `containers:
  binds: [{host: /data/a, container: /a}]
  memory: 512M
  cpus: 1.5
  sets:
    - {name: web, count: 1, binds: [{host: /data/b, container: /b, readOnly: false}], memory: 1G}
    - {name: db, count: 1}
`,
    "t.yaml",
  );
  const [web, db] = containerSpecs(c);
  assert.deepEqual(web?.binds, [
    { host: "/data/a", container: "/a", readOnly: true },
    { host: "/data/b", container: "/b", readOnly: false },
  ]);
  assert.deepEqual([web?.memory, web?.cpus, db?.memory, db?.cpus], ["1G", 1.5, "512M", 1.5]);
  assert.deepEqual(db?.binds, [{ host: "/data/a", container: "/a", readOnly: true }]);
  assert.equal(memoryBytes("512M"), 512 * 1024 ** 2);
  assert.equal(memoryBytes("3"), 3);
});

test("binds go to nspawn as --bind-ro/--bind, limits to the scope as MemoryMax and CPUQuota", () => {
  const p = {
    name: "web1",
    merged: "/m/web1",
    logFile: "/l",
    bridge: "br0",
    init: "boot" as const,
    stopTimeoutMs: 1,
    binds: [
      { host: "/data/a", container: "/a", readOnly: true },
      { host: "/data/b", container: "/b", readOnly: false },
    ],
  };
  const argv = nspawnArgs(p, false);
  assert.ok(argv.includes("--bind-ro=/data/a:/a") && argv.includes("--bind=/data/b:/b"), argv.join(" "));
  const scope = inScope("web1", argv, { memory: 64 * 1024 ** 2, cpus: 1.5 });
  assert.ok(
    scope.includes(`--property=MemoryMax=${64 * 1024 ** 2}`) && scope.includes("--property=CPUQuota=150%"),
  );
  assert.ok(scope.indexOf("--property=CPUQuota=150%") < scope.indexOf("systemd-nspawn"));
});

test("limits on this host's cgroups: one cgroup per controller, nested in aplspawn's own on v1", async () => {
  const cgs = await limitCgroups(realHost(), "web1", { memory: 1 << 30, cpus: 0.5 });
  assert.equal(cgs.length, 2);
  for (const cg of cgs) assert.match(cg.dir, /\/aplspawn\/web1$/);
  const files = Object.fromEntries(cgs.flatMap((c) => c.files));
  assert.ok(
    files["memory.limit_in_bytes"] === String(1 << 30) || files["memory.max"] === String(1 << 30),
    JSON.stringify(files),
  );
  assert.ok(
    files["cpu.cfs_quota_us"] === "50000" || files["cpu.max"] === "50000 100000",
    JSON.stringify(files),
  );
});
