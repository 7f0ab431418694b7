// The run scope (src/host/run-scope.ts): what a run learns of the host once is the run's, not the
// process's. Two runs on one host object in one process each ask for themselves; one run's
// checks, dry-run previews and rollbacks ask once between them.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExecOptions, Host } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";
import { runContext, runKey, runScope } from "../../src/host/run-scope.js";
import { detectBackend } from "../../src/net/iptables.js";
import { task, type Workflow } from "../../src/runner/task.js";
import { ruleTask } from "../../tasks/net/iptables-rule.js";
import { recordingHost } from "../support/recording-host.js";
import { run, withWorld } from "../support/synthetic.js";

const VERSION = { stdout: "iptables v1.8.9 (nf_tables)" };
const asked = (calls: readonly { op: string; detail: string }[]) =>
  calls.filter((c) => c.op === "exec" && c.detail === "iptables -V").length;

test("two runs on one host object do not share what they learned: each asks iptables -V once", async () => {
  const h = recordingHost();
  h.which = async (cmd) => `/usr/sbin/${cmd}`;
  h.onExec = (cmd, args) => (cmd === "iptables" && args[0] === "-V" ? VERSION : undefined);
  const first = runContext(h);
  const second = runContext(h);
  assert.equal(await detectBackend(first), "nf_tables");
  assert.equal(await detectBackend(first), "nf_tables");
  assert.equal(asked(h.calls), 1, "one run asks once");
  assert.equal(await detectBackend(second), "nf_tables");
  assert.equal(asked(h.calls), 2, "another run on the same host object asks for itself");
});

test("a run's checks and its dry-run previews share the run's scope; the next run starts empty", () =>
  withWorld(async (t) => {
    const real = realHost();
    const calls: { op: string; detail: string }[] = [];
    // The real host, but iptables is a fake: its rules are absent, its backend nf_tables.
    const host: Host = {
      ...real,
      which: async (cmd) => (cmd === "iptables" ? "/usr/sbin/iptables" : real.which(cmd)),
      async exec(cmd: string, args: readonly string[], opts: ExecOptions = {}) {
        if (cmd !== "iptables") return real.exec(cmd, args, opts);
        const command = [cmd, ...args].join(" ");
        calls.push({ op: "exec", detail: command });
        const absent = args.includes("-C");
        return {
          command,
          exitCode: absent ? 1 : 0,
          stdout: args[0] === "-V" ? VERSION.stdout : "",
          stderr: "",
        };
      },
    };
    const rule = (n: number) =>
      task(ruleTask, `net.iptables.rule[${n}]`, {
        rule: { table: "filter" as const, chain: "SCOPETEST", args: ["-s", `10.0.0.${n}`, "-j", "ACCEPT"] },
        insert: false,
        title: `rule ${n}`,
      });
    const wf: Workflow = { name: "scope", steps: [rule(1), rule(2)] };
    for (const n of [1, 2]) {
      const before = asked(calls);
      const r = await run(wf, t.lab, { host, dryRun: true });
      assert.equal(r.error, undefined);
      assert.equal(r.summary?.wouldChange, 2);
      assert.equal(
        asked(calls) - before,
        1,
        `run ${n}: its checks and previews ask iptables -V once between them`,
      );
    }
  }));

test("a memo keeps what it made for the run, forgets a promise that failed; a mutex of one name is one queue", async () => {
  const s = runScope();
  const key = runKey<Promise<number>>("n");
  let made = 0;
  await assert.rejects(
    s.memo(key, async () => {
      made++;
      throw new Error("no answer");
    }),
  );
  assert.equal(await s.memo(key, async () => ++made), 2, "a failed answer is asked again");
  assert.equal(await s.memo(key, async () => ++made), 2, "a good one is kept");
  assert.equal(await runScope().memo(key, async () => 7), 7, "another scope keeps its own");
  const order: string[] = [];
  const slow = s.mutex("m")(async () => {
    await new Promise((r) => setImmediate(r));
    order.push("first");
  });
  const fast = s.mutex("m")(async () => {
    order.push("second");
  });
  await Promise.all([slow, fast]);
  assert.deepEqual(order, ["first", "second"]);
  assert.equal(s.mutex("m"), s.mutex("m"));
  assert.notEqual(s.mutex("m"), runScope().mutex("m"));
});
