// Private namespaces for real tests: a holder process owns a new network and mount namespace
// (mount propagation private), and commands run inside it with nsenter. Bridges, iptables rules,
// sysctls of the network stack and mounts stay private to the test; loop devices and processes do not.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { execa } from "execa";
import { INDEX_DIR } from "../../src/lab/registry.js";
import { waitFor } from "./wait.js";

/** The CLI as it ships: the bundle and its code cache `npm run build` makes (dist/cli/main.js unbundled). */
export const CLI = resolve(import.meta.dirname, "../../cli/bin.js");

/** What a command inside the namespace returned. */
export interface NsResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The host state a real test compares before and after (inside its namespace). */
export interface NsSnapshot {
  links: string;
  addrs: string;
  iptables: string;
  ipForward: string;
  mounts: string;
}

/** A private network + mount namespace for one test. */
export class TestNamespace {
  private readonly cleanups: (() => Promise<void>)[] = [];
  private constructor(
    private readonly holder: ChildProcess,
    readonly pid: number,
  ) {}

  /** Make the namespace; loopback is brought up inside. */
  static async create(): Promise<TestNamespace> {
    const holder = spawn(
      "unshare",
      ["--net", "--mount", "--propagation", "private", "--", "sleep", "infinity"],
      {
        stdio: "ignore",
      },
    );
    const pid = await new Promise<number>((res, rej) => {
      holder.once("error", rej);
      holder.once("spawn", () => res(holder.pid ?? -1));
    });
    // unshare execs sleep once the namespaces exist: wait for that.
    await waitFor(
      async () => {
        const { stdout } = await execa("readlink", [`/proc/${pid}/ns/net`], { reject: false });
        const mine = (await execa("readlink", ["/proc/self/ns/net"])).stdout;
        const comm = (await execa("cat", [`/proc/${pid}/comm`], { reject: false })).stdout.trim();
        return Boolean(stdout) && stdout !== mine && comm === "sleep";
      },
      10_000,
      10,
    );
    const ns = new TestNamespace(holder, pid);
    await ns.run("ip", ["link", "set", "lo", "up"]);
    // The host's index of labs (src/lab/registry.ts) is the test's own: its labs are not the host's.
    await mkdir(INDEX_DIR, { recursive: true, mode: 0o700 });
    const index = await ns.run("mount", ["-t", "tmpfs", "-o", "mode=0700", "aplspawn-test-index", INDEX_DIR]);
    if (index.exitCode !== 0) throw new Error(`mounting a private ${INDEX_DIR}: ${index.stderr}`);
    return ns;
  }

  /** argv to run a command inside the namespace. */
  wrap(cmd: string, args: readonly string[], cwd?: string): [string, string[]] {
    // Entering the mount namespace, nsenter changes to its root unless told where to work.
    return [
      "nsenter",
      ["-t", String(this.pid), "-n", "-m", ...(cwd ? [`--wd=${cwd}`] : []), "--", cmd, ...args],
    ];
  }

  /** Run a command inside; never throws on a non-zero exit. */
  async run(
    cmd: string,
    args: readonly string[],
    opts: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string } = {},
  ): Promise<NsResult> {
    const [c, a] = this.wrap(cmd, args, opts.cwd);
    const r = await execa(c, a, {
      reject: false,
      // Not the sudo of `sudo npm test`: `run up` would give that user the lab (src/lab/owner.ts).
      // A test that means an owner passes SUDO_USER itself.
      env: { ...withoutSudo(process.env), ...opts.env },
      extendEnv: false,
      input: opts.input,
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 600_000,
      // A process group of its own: a group-wide signal from inside (a CLI's kill(0), seen ending the
      // whole `npm test` with SIGTERM) reaches only what this command started, never the test runner.
      detached: true,
    });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /**
   * The CLI as another user of the namespace can run it: the checkout may sit where only root
   * reaches (/root is 0700), so its tree is bound at a directory anyone may enter, in this namespace
   * alone; a tree that is itself closed to others is copied there instead (dev tools left out).
   */
  async userCli(uid: number): Promise<{ cli: string; release(): Promise<void> }> {
    const pkg = resolve(CLI, "../../..");
    const dir = await mkdtemp(join(tmpdir(), "aplspawn-cli-"));
    await chmod(dir, 0o755);
    this.cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const cli = join(dir, "dist", "cli", "bin.js");
    const bound = await this.run("mount", ["--bind", "-o", "ro", pkg, dir]);
    if (bound.exitCode !== 0) throw new Error(`binding ${pkg} at ${dir}: ${bound.stderr}`);
    const readable = await this.run("setpriv", [
      "--reuid",
      String(uid),
      "--regid",
      String(uid),
      "--clear-groups",
      "--",
      "test",
      "-r",
      cli,
    ]);
    const release = async () => {
      await this.run("umount", [dir]);
    };
    if (readable.exitCode === 0) return { cli, release };
    await this.run("umount", [dir]);
    for (const part of ["package.json", "dist", "config", "node_modules"])
      await cp(join(pkg, part), join(dir, part), {
        recursive: true,
        filter: (src) => !/node_modules\/(@biomejs|typescript|esbuild|@esbuild)(\/|$)/.test(src),
      });
    await this.run("chmod", ["-R", "a+rX", dir]);
    return { cli, release: async () => undefined };
  }

  /** Run the aplspawn CLI inside the namespace (plain output: not a terminal). */
  cli(
    args: readonly string[],
    opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
  ): Promise<NsResult> {
    if (!process.env.APLSPAWN_TEST_TRACE) return this.run(process.execPath, [CLI, ...args], opts);
    // APLSPAWN_TEST_TRACE=1: each CLI run's wall time on stderr, to find where a test's time goes.
    const t0 = Date.now();
    return this.run(process.execPath, [CLI, ...args], opts).then((r) => {
      const shown = args.filter((a, i) => a !== "-c" && args[i - 1] !== "-c").join(" ");
      process.stderr.write(`# cli ${((Date.now() - t0) / 1000).toFixed(1)} s: ${shown} → ${r.exitCode}\n`);
      return r;
    });
  }

  /** Start a long-running process inside (a server); kill it when done. */
  spawn(cmd: string, args: readonly string[]): ChildProcess {
    const [c, a] = this.wrap(cmd, args);
    return spawn(c, a, { stdio: ["ignore", "pipe", "pipe"] });
  }

  /** The namespace's network and mount state, for before/after comparisons. */
  async snapshot(): Promise<NsSnapshot> {
    const out = async (cmd: string, args: string[]) => (await this.run(cmd, args)).stdout;
    const iptables = (await out("iptables-save", []))
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
    return {
      links: (await out("ip", ["-o", "link"])).replace(/\s+link\/.*$/gm, ""),
      addrs: await out("ip", ["-o", "addr"]),
      iptables,
      ipForward: (await out("cat", ["/proc/sys/net/ipv4/ip_forward"])).trim(),
      mounts: (await out("findmnt", ["-rn", "-o", "TARGET,FSTYPE"])).split("\n").sort().join("\n"),
    };
  }

  /** Kill the holder: the namespaces go away with their bridges, rules and mounts. */
  async destroy(): Promise<void> {
    this.holder.kill("SIGKILL");
    await new Promise((r) => (this.holder.exitCode !== null ? r(undefined) : this.holder.once("exit", r)));
    for (const c of this.cleanups.splice(0)) await c();
  }
}

/** The environment without what sudo sets (SUDO_USER, SUDO_UID, SUDO_GID, SUDO_COMMAND). */
export function withoutSudo(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (kv): kv is [string, string] => !kv[0].startsWith("SUDO_") && kv[1] !== undefined,
    ),
  );
}

/** Run `fn` with a temporary directory (tempDir's), removed whatever happened; gives what `fn` gives. */
export async function withTempDir<T>(
  fn: (d: { path: string; cleanup(): Promise<void> }) => Promise<T>,
): Promise<T> {
  const d = await tempDir();
  try {
    return await fn(d);
  } finally {
    await d.cleanup();
  }
}

/** A temporary directory removed by the returned cleanup. */
export async function tempDir(
  prefix = "aplspawn-test-",
): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  // Root's, and others may enter: Ansible runs as an unprivileged account (the lab's owner, or
  // aplspawn's) and reads the tests' playbooks here.
  await chmod(path, 0o755);
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Whether we can run real tests (root with unshare). */
export const isRoot = process.getuid?.() === 0;

/** Whether `program` is an executable file in a directory of PATH. */
function onPath(program: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * The skip option of a test that needs root or programs the machine may lack: false when it can
 * run here, else the first need not met ("needs root", "needs tmux"). `requires("root", "tmux")`.
 */
export function requires(...needs: ("root" | (string & {}))[]): false | string {
  const missing = needs.find((n) => (n === "root" ? !isRoot : !onPath(n)));
  return missing === undefined ? false : `needs ${missing}`;
}

/**
 * The skip option of every test that needs root (namespaces, mounts, bridges, iptables, loop
 * devices, systemd-nspawn, setpriv): `test(title, { skip }, fn)`; `requires("root", program)` for
 * one that also needs a program.
 */
export const skip = requires("root");
