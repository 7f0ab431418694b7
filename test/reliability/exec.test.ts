// `aplspawn exec` attacked as a container's root would: the command it starts must get no more than
// the container's init (its seccomp filter: nspawn's refuses keyctl), must never be a host binary
// (`#!/proc/self/exe` re-runs whatever program performs the execve), must never hold the caller's
// terminal (TIOCSTI pushes keystrokes into a terminal's input), and no process of aplspawn's may be
// in the container's cgroup or PID namespace (where the container could freeze, kill or ptrace it).
// One lab of one container (without privateUsers: the case where the container's root is the host's
// uid 0); each attack in a subtest of its own.
import assert from "node:assert/strict";
import { readdir, readFile, readlink } from "node:fs/promises";
import { execa } from "execa";
import { labTest, netLabTest, ok, statusField } from "../support/lab.js";
import { CLI } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0): allowed to any process by the kernel,
// refused (EPERM) by nspawn's seccomp filter. Prints the result and errno.
const KEYCTL = [
  "import ctypes",
  "libc = ctypes.CDLL(None, use_errno=True)",
  "r = libc.syscall(250, 0, -3, 0)",
  "print('keyctl', r, ctypes.get_errno())",
].join("; ");

// Pushes "echo PWNED" and a newline into the input of the terminal on its stdin, a byte at a time.
const TIOCSTI = [
  "import fcntl, termios",
  "try:\n    [fcntl.ioctl(0, termios.TIOCSTI, bytes([c])) for c in b'echo PWNED\\n']\n    print('pushed')",
  "except OSError as e:\n    print('refused', e)",
].join("\n");

// The caller's side: a pty (python's pty.fork) running a shell that runs argv (aplspawn exec), says
// EXEC-DONE, then reads a line from its terminal and shows it. Once EXEC-DONE is seen, "clean" is
// typed: a line pushed into this terminal by the container would be read first.
const CALLER = String.raw`
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", '"$@"; echo EXEC-DONE; IFS= read -r line; echo "GOT:$line"', "sh"] + sys.argv[1:])
out = b""
typed = False
while True:
    if select.select([fd], [], [], 300)[0] == []:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not typed and b"EXEC-DONE" in out:
        os.write(fd, b"clean\n")
        typed = True
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
`;

/** PIDs of pid and all its descendants. */
async function tree(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const n of await readdir("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    const stat = await readFile(`/proc/${n}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid) parent.set(Number(n), ppid);
  }
  const out = [pid];
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp] of parent)
      if (out.includes(pp) && !out.includes(p)) {
        out.push(p);
        grew = true;
      }
  }
  return out;
}

/** A process's cgroup paths of the hierarchies systemd uses, keyed by hierarchy ("0" or "name=systemd"). */
async function cgroups(pid: number | string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const line of (await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "")).split("\n")) {
    const [, id, ctl, path] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    if (ctl === "") out.set(id ?? "", path);
    else if (ctl === "name=systemd") out.set(ctl, path);
  }
  return out;
}

labTest(
  "exec is no stronger than the container's init and runs no host binary in it",
  { name: "exc", subnet: 91, containers: { count: 1 }, inventory: { ping: false } },
  async (lab, t) => {
    ok(await lab.cli(["run", "up"]), "run up");
    const name = "exc-10";
    const leader = Number(ok(await lab.cli(["pids"]), "pids").stdout.trim());
    const exec = (...cmd: string[]) => lab.cli(["exec", name, "--", ...cmd]);

    await t.test(
      "the Seccomp line under exec is the init's, and a syscall nspawn refuses is refused",
      async () => {
        const init = await readFile(`/proc/${leader}/status`, "utf8");
        assert.equal(statusField(init, "Seccomp"), "2", "the init runs under nspawn's filter");
        const own = ok(await exec("cat", "/proc/self/status"), "exec cat").stdout;
        for (const f of ["Seccomp", "Seccomp_filters", "CapBnd"])
          assert.equal(statusField(own, f), statusField(init, f), `${f} as the init's`);
        assert.equal(statusField(own, "NoNewPrivs"), "1");
        // The same probe as one of the init's own children (sshd's session) and under exec.
        const asInit = ok(await lab.cli(["ssh", name, "--", `python3 -c "${KEYCTL}"`]), "ssh keyctl").stdout;
        assert.match(asInit, /^keyctl -1 1$/m, "nspawn's filter refuses keyctl (EPERM)");
        const underExec = ok(await exec("python3", "-c", KEYCTL), "exec keyctl").stdout;
        assert.equal(underExec, asInit.trim(), "keyctl under exec as under the init");
      },
    );

    await t.test("a #!/proc/self/exe program run by exec prints nothing of the host's tools", async () => {
      ok(
        await exec("sh", "-c", "printf '#!/proc/self/exe --version\\n' > /root/v && chmod 755 /root/v"),
        "plant",
      );
      const r = await exec("/root/v");
      const said = r.stdout + r.stderr;
      // What any host program exec could be built on says about itself.
      for (const [tool, args] of [
        ["nsenter", ["--version"]],
        ["setpriv", ["--version"]],
        ["python3", ["--version"]],
        [process.execPath, ["--version"]],
      ] as const) {
        const v = (await execa(tool, args, { reject: false })).stdout.trim();
        if (v) assert.ok(!said.includes(v), `the host's ${tool} ran in the container: ${said}`);
      }
      assert.doesNotMatch(said, /util-linux|Python|aplspawn-connect/);
    });

    await t.test("a TIOCSTI push from exec lands nowhere on the caller's side", async () => {
      const [cmd, args] = lab.ns.wrap(
        process.execPath,
        [CLI, "-c", lab.config, "exec", name, "--", "python3", "-c", TIOCSTI],
        lab.dir,
      );
      const r = await execa("python3", ["-c", CALLER, cmd, ...args], { reject: false, timeout: 600_000 });
      assert.match(r.stdout, /pushed/, `the push ran (on the pty exec gave it):\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /EXEC-DONE/, r.stdout);
      assert.match(r.stdout, /^GOT:clean\r?$/m, `the caller's shell read something else:\n${r.stdout}`);
      assert.doesNotMatch(r.stdout, /GOT:echo PWNED/);
    });

    await t.test(
      "the container can neither see nor freeze aplspawn: no process of it is in the container's cgroup or PID namespace",
      async () => {
        // The container's cgroup: the init's, less what the init sees of it from inside.
        const inside = await cgroups(leader);
        const own = ok(await exec("cat", "/proc/1/cgroup"), "the init's cgroups from inside").stdout;
        const roots = new Map<string, string>();
        for (const line of own.split("\n")) {
          const [, id, ctl, path] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
          const key = ctl === "" ? id : ctl;
          const host = key ? inside.get(key) : undefined;
          if (host && path && host.endsWith(path)) roots.set(key ?? "", host.slice(0, -path.length));
        }
        assert.ok(roots.size > 0, `no cgroup of the container found: ${own}`);
        const pidNs = await readlink(`/proc/${leader}/ns/pid`);
        const child = lab.spawnCli(["exec", name, "--", "sh", "-c", "echo ready; exec sleep 1000"]);
        let out = "";
        child.stdout?.on("data", (d: Buffer) => (out += d));
        const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
        await waitFor(() => out.includes("ready"), 60_000, 100);
        assert.match(out, /ready/, "the command runs");
        const ours = await tree(child.pid ?? -1);
        assert.ok(ours.length >= 2, `aplspawn and its helper: ${ours}`);
        for (const p of ours) {
          const ns = await readlink(`/proc/${p}/ns/pid`).catch(() => undefined);
          assert.notEqual(ns, pidNs, `process ${p} of aplspawn's is in the container's PID namespace`);
          for (const [key, path] of await cgroups(p)) {
            const root = roots.get(key);
            if (root === undefined) continue;
            assert.ok(
              path !== root && !path.startsWith(`${root}/`),
              `process ${p} of aplspawn's is in the container's cgroup ${path} (${key})`,
            );
          }
        }
        // Ctrl-C off a terminal (SIGINT to aplspawn) ends the command, which ends with it.
        child.kill("SIGINT");
        assert.equal(await exited, 130, "exec's exit code after SIGINT");
        const comms = ok(await exec("sh", "-c", "cat /proc/[0-9]*/comm"), "processes inside").stdout;
        assert.doesNotMatch(comms, /^sleep$/m, "the command was ended");
      },
    );

    await t.test("without a terminal: stdin to its end, stdout and stderr apart, the exit code", async () => {
      const r = await lab.ns.run(
        process.execPath,
        [CLI, "-c", lab.config, "exec", name, "--", "sh", "-c", "cat; echo e >&2; exit 7"],
        {
          input: "line one\nline two",
          cwd: lab.dir,
        },
      );
      assert.equal(r.exitCode, 7);
      assert.equal(r.stdout, "line one\nline two");
      assert.match(r.stderr, /^e$/m);
      assert.match(r.stderr, /sh in exc-10 exited with code 7/);
      const units = ok(
        await exec("systemctl", "list-units", "--all", "--no-legend", "aplspawn-exec-*"),
        "units",
      ).stdout;
      // Only the unit of this very exec (systemctl's): the ones before were collected as they ended.
      assert.equal(units.split("\n").filter((l) => l.includes("aplspawn-exec-")).length, 1, units);
    });

    ok(await lab.cli(["run", "down"]), "run down");
  },
);

netLabTest(
  "exec refuses a container whose init is a script: there is no systemd in it to start the command",
  { name: "exs", subnet: 92, containers: { count: 1, init: "script" } },
  async (lab) => {
    const r = await lab.cli(["exec", "exs-10", "--", "true"]);
    assert.equal(r.exitCode, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /exs-10 runs `init: script`.*aplspawn ssh exs-10 -- true/);
  },
);
