// run up --keep-going across hosts (tasks/cluster/keep-going.ts), with the playbooks' runs faked by
// ansible-playbook's real output lines: which host failed and why, what runs next, what the one
// inventory's plan keeps.
import assert from "node:assert/strict";
import { test } from "node:test";
import { playFailures } from "../../src/cluster/report.js";
import { runContext } from "../../src/host/run-scope.js";
import type { TaskContext } from "../../src/runner/task.js";
import { upKeepingGoing } from "../../tasks/cluster/keep-going.js";
import { recordingHost } from "../support/recording-host.js";

const FAILED_UP = `TASK [The host's share up (aplspawn run up)] ***********************************
fatal: [h2]: FAILED! => {"changed": true, "cmd": ["aplspawn", "--json", "run", "up"], "msg": "non-zero return code", "rc": 1, "stderr": "aplspawn: image /lab/debian-bookworm.img: no such file", "stdout": ""}
changed: [h1]
fatal: [h3]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host 198.18.32.13 port 22: No route to host", "unreachable": true}
`;

const DIR = "/c/cluster";

function setUp() {
  const h = recordingHost();
  h.files.set(
    `${DIR}/vars.json`,
    Buffer.from(
      JSON.stringify({
        aplspawn_targets: ["h1", "h2", "h3"],
        aplspawn_peers: { h1: "198.18.32.11", h2: "198.18.32.12", h3: "198.18.32.13" },
        aplspawn_share_dir: "/s",
      }),
    ),
  );
  h.files.set(
    `${DIR}/plan.json`,
    Buffer.from(
      JSON.stringify({
        hosts: [
          { name: "a-10", ip: "10.10.46.10", user: "root", host: "h1" },
          { name: "a-11", ip: "10.10.46.11", user: "root", host: "h2" },
          { name: "a-12", ip: "10.10.46.12", user: "root", host: "h3" },
        ],
      }),
    ),
  );
  for (const d of ["/c", DIR]) h.dirs.add(d);
  const info: string[] = [];
  const ctx: TaskContext = {
    ...runContext(h),
    tty: false,
    info: (m) => info.push(m),
    progress: () => undefined,
  };
  return { h, ctx, info };
}

const P = { dir: DIR, up: "up.yml", down: "down.yml", prune: "prune.yml" };
const res = (exitCode: number, stdout = "") => ({
  command: "ansible-playbook",
  exitCode,
  stdout,
  stderr: "",
});

test("a failed command's stderr and an unreachable host's message say why each host failed", () => {
  assert.deepEqual(
    [...playFailures(FAILED_UP)],
    [
      ["h2", { unreachable: false, why: "aplspawn: image /lab/debian-bookworm.img: no such file (exit 1)" }],
      [
        "h3",
        {
          unreachable: true,
          why: "Failed to connect to the host via ssh: ssh: connect to host 198.18.32.13 port 22: No route to host",
        },
      ],
    ],
  );
});

test("keep-going: the failed hosts are taken down alone, up runs again among the rest, their VXLANs drop the failed peers, the plan keeps the rest", async () => {
  const { h, ctx, info } = setUp();
  const plays: [string, readonly string[]][] = [];
  const failed = await upKeepingGoing(ctx, P, async (book, more) => {
    plays.push([book, more]);
    return plays.length === 1 ? res(2, FAILED_UP) : res(0);
  });
  assert.deepEqual(
    failed.map((f) => f.host),
    ["h2", "h3"],
  );
  const among = { aplspawn_targets: ["h1"], aplspawn_peers: { h1: "198.18.32.11" } };
  assert.deepEqual(plays, [
    ["up.yml", []],
    ["down.yml", ["--limit", "h2,h3"]],
    ["up.yml", ["-e", JSON.stringify(among)]],
    ["prune.yml", ["-e", JSON.stringify({ ...among, aplspawn_gone: ["198.18.32.12", "198.18.32.13"] })]],
  ]);
  const plan = JSON.parse(h.files.get(`${DIR}/plan.json`)?.toString() ?? "") as { hosts: { name: string }[] };
  assert.deepEqual(
    plan.hosts.map((k) => k.name),
    ["a-10"],
  );
  // vars.json still names every host: run down takes down all of them.
  assert.match(h.files.get(`${DIR}/vars.json`)?.toString() ?? "", /"h3"/);
  assert.ok(info.some((m) => /^warning: host h2 failed: aplspawn: image .* no such file/.test(m)));
});

test("keep-going: nothing to keep when every host failed, or when the play names no failed host: an error (the rollback takes down all)", async () => {
  const { ctx } = setUp();
  const all = FAILED_UP.replace("changed: [h1]", 'fatal: [h1]: FAILED! => {"msg": "boom"}');
  await assert.rejects(
    upKeepingGoing(ctx, P, async () => res(2, all)),
    /every host failed: h1: boom; h2: /,
  );
  await assert.rejects(
    upKeepingGoing(ctx, P, async () => res(4, "ERROR! something\n")),
    /names no host that failed/,
  );
  // A failure among the hosts that stay, on the second run: an error too.
  let n = 0;
  await assert.rejects(
    upKeepingGoing(ctx, P, async () => (++n === 1 ? res(2, FAILED_UP) : n === 3 ? res(2, "") : res(0))),
    /failed again among the hosts that stay \(h1\)/,
  );
});

test("keep-going: an up that passes everywhere runs once", async () => {
  const { ctx } = setUp();
  let n = 0;
  assert.deepEqual(
    await upKeepingGoing(ctx, P, async () => {
      n++;
      return res(0);
    }),
    [],
  );
  assert.equal(n, 1);
});
