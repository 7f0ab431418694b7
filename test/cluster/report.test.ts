// What the control node makes of its hosts' answers (src/cluster/report.ts), and how it reaches a
// container or its host (cli/cluster.ts): from ansible-playbook's real output (an unreachable host
// as Ansible 2.14 prints it) and the files ansible/cluster-status.yml writes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { containerSshArgs, hostExecCommand } from "../../cli/cluster.js";
import { renderLabTable } from "../../cli/lab-table.js";
import { completeConfig, configSchema } from "../../config/schema.js";
import {
  containerStatesOf,
  hostReports,
  type ShareView,
  sharesOf,
  statusOf,
  unreachableOf,
  upAnswerStates,
} from "../../src/cluster/report.js";

const PLAY_UNREACHABLE = `
PLAY [aplspawn lab across hosts (report)] **************************************

TASK [The host's share, as its aplspawn reports it] ****************************
fatal: [h2]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect to the host via ssh: ssh: connect to host 198.18.32.12 port 22: Connection refused", "unreachable": true}
ok: [h1]

PLAY RECAP *********************************************************************
h1                         : ok=2    changed=1    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
h2                         : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0
`;

const vars = {
  aplspawn_targets: ["h1", "h2"],
  aplspawn_peers: { h1: "198.18.32.11", h2: "198.18.32.12" },
  aplspawn_share_dir: "/var/lib/aplspawn/.cluster/o32",
};
const plan = [
  { name: "o32-10", ip: "10.10.46.10", user: "root", host: "h1", proxy: "ssh -W %h:%p h1" },
  { name: "o32-11", ip: "10.10.46.11", user: "root", host: "h1" },
  { name: "o32-12", ip: "10.10.46.12", user: "root", host: "h2" },
];
/** The words a POSIX shell reads in a command line. */
const words = (line: string) =>
  execFileSync("sh", ["-c", 'eval "set -- $1"; for w; do printf "%s\\0" "$w"; done', "sh", line], {
    encoding: "utf8",
  })
    .split("\0")
    .slice(0, -1);

const answer = (rc: number, stdout: string, stderr = "") => JSON.stringify({ rc, stdout, stderr, msg: "" });

test("the shares follow the playbook's targets, each with the containers plan.json gives its host", () => {
  const shares = sharesOf(vars, plan);
  assert.deepEqual(
    shares.map((s) => [s.host, s.address, s.containers.map((k) => k.name)]),
    [
      ["h1", "198.18.32.11", ["o32-10", "o32-11"]],
      ["h2", "198.18.32.12", ["o32-12"]],
    ],
  );
});

test("a host Ansible cannot reach is reported with Ansible's reason, the others with their aplspawn's answer", () => {
  assert.equal(
    unreachableOf(PLAY_UNREACHABLE).get("h2"),
    "Failed to connect to the host via ssh: ssh: connect to host 198.18.32.12 port 22: Connection refused",
  );
  const pids = JSON.stringify([
    { name: "o32-10", ip: "10.10.46.10", nspawnPid: 10, leaderPid: 11 },
    { name: "o32-11", ip: "10.10.46.11" },
  ]);
  const reports = hostReports(
    sharesOf(vars, plan),
    new Map([
      ["h1", answer(1, `aplspawn: warning: something\n${pids}`)],
      ["h2", undefined],
    ]),
    { exitCode: 4, stdout: PLAY_UNREACHABLE, stderr: "" },
  );
  assert.equal(reports[0]?.answered, true);
  assert.equal(reports[0]?.rc, 1);
  assert.equal(reports[1]?.answered, false);
  assert.match(reports[1]?.error ?? "", /^unreachable: Failed to connect .*198\.18\.32\.12 port 22/);
  // Each container with its host and the state its host reports; those of a silent host unknown.
  assert.deepEqual(containerStatesOf(reports), [
    { name: "o32-10", ip: "10.10.46.10", host: "h1", state: "running" },
    { name: "o32-11", ip: "10.10.46.11", host: "h1", state: "stopped" },
    { name: "o32-12", ip: "10.10.46.12", host: "h2", state: "unknown" },
  ]);
});

test("a host whose aplspawn prints no report says why (missing there, a failing config), not a state", () => {
  const shares: ShareView[] = sharesOf(vars, plan).slice(0, 1);
  const [r] = hostReports(
    shares,
    new Map([["h1", answer(2, "", "aplspawn: config /x/aplspawn.yaml: no such file")]]),
    { exitCode: 0, stdout: "", stderr: "" },
  );
  assert.equal(r?.answered, false);
  assert.match(
    r?.error ?? "",
    /printed no report \(exit 2\): aplspawn: config \/x\/aplspawn.yaml: no such file/,
  );
  // A file that is not what the playbook writes is no answer either.
  const [bad] = hostReports(shares, new Map([["h1", "[]"]]), { exitCode: 0, stdout: "", stderr: "" });
  assert.equal(bad?.answered, false);
  // No file and no UNREACHABLE line: the play's last words.
  const [none] = hostReports(shares, new Map(), {
    exitCode: 1,
    stdout: "",
    stderr: "ERROR! the playbook could not be read\n",
  });
  assert.equal(none?.error, "no answer: ERROR! the playbook could not be read");
  assert.deepEqual(statusOf(none!), { error: "no answer: ERROR! the playbook could not be read" });
});

test("a host's status --json is read as status prints it, its checks kept", () => {
  const status = {
    ok: false,
    checks: [{ name: "ssh login", target: "o32-10", ok: false, detail: "refused" }],
  };
  const [r] = hostReports(
    sharesOf(vars, plan).slice(0, 1),
    new Map([["h1", answer(1, JSON.stringify(status))]]),
    {
      exitCode: 0,
      stdout: "",
      stderr: "",
    },
  );
  assert.deepEqual(statusOf(r!), status);
  const [odd] = hostReports(sharesOf(vars, plan).slice(0, 1), new Map([["h1", answer(0, '{"ok": "yes"}')]]), {
    exitCode: 0,
    stdout: "",
    stderr: "",
  });
  assert.ok("error" in statusOf(odd!));
});

test("ssh to a container goes through its host's ProxyCommand with the merged known_hosts pinned, never unchecked", () => {
  const view = { dir: "/home/u/.local/state/aplspawn/lab-x/cluster" };
  const args = containerSshArgs(view as never, plan[0]!, "root", ["uname", "-a"]);
  assert.deepEqual(args.slice(args.indexOf("-o", 4)), [
    "-o",
    "ConnectTimeout=10",
    "-o",
    `UserKnownHostsFile=${view.dir}/known_hosts`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "ProxyCommand=ssh -W %h:%p h1",
    "-l",
    "root",
    "10.10.46.10",
    "--",
    "uname",
    "-a",
  ]);
  assert.equal(args[1], `${view.dir}/id_ed25519`);
  assert.ok(!args.join(" ").includes("StrictHostKeyChecking=no"));
});

test("exec runs the host's aplspawn exec (aplspawn_command when set) on its share, as root there: sudo -n unless Ansible logs in as root, each word quoted twice", () => {
  const o = { loginUser: "alice", shareDir: "/var/lib/aplspawn/.cluster/o32", name: "o32-12", tty: false };
  const asRoot = hostExecCommand(
    { host: "198.18.32.12", user: "root", key: "/k", args: "-o UserKnownHostsFile=/kh" },
    { ...o, command: ["sh", "-c", "echo it's here"] },
  );
  // As the two shells read it: the local one (ssh's argv), then the host's (the remote command).
  const local = words(asRoot);
  assert.deepEqual(local.slice(0, -1), [
    "ssh",
    "-o",
    "UserKnownHostsFile=/kh",
    "-o",
    "BatchMode=yes",
    "-i",
    "/k",
    "-o",
    "IdentitiesOnly=yes",
    "-T",
    "root@198.18.32.12",
  ]);
  assert.deepEqual(words(local.at(-1)!), [
    "env",
    "SUDO_USER=",
    "SUDO_UID=",
    "aplspawn",
    "-c",
    "/var/lib/aplspawn/.cluster/o32/aplspawn.yaml",
    "exec",
    "o32-12",
    "--",
    "sh",
    "-c",
    "echo it's here",
  ]);
  const asAlice = hostExecCommand({ host: "h2", port: 2222 }, { ...o, command: ["true"], tty: true });
  assert.match(asAlice, /^ssh -o BatchMode=yes -p 2222 -t h2 'sudo -n -- env /);
  // The host's aplspawn_command is the program run there, as its playbooks run it.
  const own = hostExecCommand(
    { host: "h3", user: "root", aplspawn: "/opt/my aplspawn/bin/aplspawn" },
    { ...o, command: ["true"] },
  );
  assert.deepEqual(words(words(own).at(-1)!).slice(3, 5), ["/opt/my aplspawn/bin/aplspawn", "-c"]);
});

test("run up's table of a lab across hosts names each container's host, and an unknown state when it gave no answer", () => {
  const c = completeConfig(
    configSchema.parse({
      lab: "o32",
      cluster: { inventory: "hosts.ini" },
      network: { bridge: "br-o32", address: "10.10.46.1/26" },
    }),
  );
  const text = renderLabTable(c, [
    { name: "o32-10", ip: "10.10.46.10", host: "h1", groups: ["aplspawned"], state: "running" },
    { name: "o32-12", ip: "10.10.46.12", host: "h2", groups: ["aplspawned"], state: "unknown" },
  ]);
  assert.match(text, /NAME\s+ADDRESS\s+HOST\s+GROUPS\s+STATE/);
  assert.match(text, /o32-12\s+10\.10\.46\.12\s+h2\s+aplspawned\s+unknown/);
});

test("the table after up takes each host's states from its own run up --json answer: its last JSON line when it is a lab table, nothing else", () => {
  const lab = (containers: unknown) => JSON.stringify({ ts: "t", lab: "o32", event: "lab", containers });
  const answer = [
    JSON.stringify({ ts: "t", lab: "o32", event: "task", id: "container.ready[o32-10]", state: "changed" }),
    lab([{ name: "o32-10", state: "stopped" }]),
    lab([
      { name: "o32-10", ip: "10.10.46.10", groups: ["aplspawned"], state: "running" },
      { name: "o32-11", ip: "10.10.46.11", groups: ["aplspawned"], state: "stopped" },
    ]),
    "",
  ].join("\n");
  assert.deepEqual(
    [...(upAnswerStates(answer) ?? [])],
    [
      ["o32-10", "running"],
      ["o32-11", "stopped"],
    ],
  );
  // No lab line, or one whose states are not ours to print: no answer (the hosts are asked).
  assert.equal(upAnswerStates(answer.split("\n")[0]!), undefined);
  assert.equal(upAnswerStates(lab([{ name: "o32-10", state: "\u001b[2Jpwned" }])), undefined);
  assert.equal(upAnswerStates('{"event":"lab", broken'), undefined);
});
