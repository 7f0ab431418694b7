// A fake host for tests and the runner benchmark: records every call, keeps files in memory,
// and answers commands with a handler the test supplies (zx-style: replace the side effect, not the module).
import { setTimeout as delay } from "node:timers/promises";
import {
  CommandError,
  type ExecOptions,
  type ExecResult,
  type FileStat,
  formatCommand,
  type Host,
  type HttpResponse,
  type RootFs,
  RootFsError,
} from "../../src/host/host.js";

/** One call the fake saw. */
export interface RecordedCall {
  op: string;
  detail: string;
}

/** Answers a command; return undefined for the default (exit 0, no output). */
export type ExecHandler = (
  cmd: string,
  args: readonly string[],
  opts: ExecOptions,
) => Partial<ExecResult> | undefined | Promise<Partial<ExecResult> | undefined>;

/** A Host whose calls are recorded and whose world is in memory. */
export interface RecordingHost extends Host {
  calls: RecordedCall[];
  files: Map<string, Buffer>;
  dirs: Set<string>;
  alive: Set<number>;
  onExec: ExecHandler;
  onHttp: (url: string, method: string, headers: Record<string, string>) => HttpResponse;
}

/** Make a recording host. */
export function recordingHost(): RecordingHost {
  const locks = new Set<string>();
  const h: RecordingHost = {
    calls: [],
    files: new Map(),
    dirs: new Set(["/"]),
    alive: new Set([process.pid]),
    onExec: () => undefined,
    onHttp: () => ({ status: 404, headers: {}, body: (async function* () {})() }),
    async exec(cmd, args, opts = {}) {
      const command = formatCommand(cmd, args);
      h.calls.push({ op: "exec", detail: command });
      if (opts.signal?.aborted) throw new CommandError(command, undefined, "", "Command cancelled");
      const r = { command, exitCode: 0, stdout: "", stderr: "", ...(await h.onExec(cmd, args, opts)) };
      if (r.exitCode !== 0 && !opts.allowFail)
        throw new CommandError(command, r.exitCode, r.stderr, `Command failed with exit code ${r.exitCode}`);
      return r;
    },
    async spawnDetached(cmd, args) {
      h.calls.push({ op: "spawn", detail: formatCommand(cmd, args) });
      const pid = 100000 + h.calls.length;
      h.alive.add(pid);
      return pid;
    },
    async lockFile(path, o) {
      // One in-memory holder per path, waited for on the fake clock.
      for (let waited = 0; locks.has(path); waited += 10) {
        if (waited >= o.waitMs) return undefined;
        await delay(10);
      }
      locks.add(path);
      h.calls.push({ op: "lock", detail: path });
      if (!h.files.has(path)) h.files.set(path, Buffer.alloc(0));
      return {
        async release() {
          if (o.removeOnRelease) h.files.delete(path);
          locks.delete(path);
        },
      };
    },
    kill(pid, signal) {
      h.calls.push({ op: "kill", detail: `${signal} ${pid}` });
      if (!h.alive.has(pid)) return false;
      if (signal !== 0) h.alive.delete(pid);
      return true;
    },
    fs: {
      async readFile(p) {
        const b = h.files.get(p);
        if (!b) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
        return b.toString("utf8");
      },
      async readBytes(p, pos, len) {
        const b = h.files.get(p);
        if (!b) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
        return b.subarray(pos, pos + len);
      },
      async writeFile(p, d) {
        h.calls.push({ op: "write", detail: p });
        h.files.set(p, Buffer.from(d));
      },
      async appendFile(p, d) {
        h.calls.push({ op: "append", detail: p });
        h.files.set(p, Buffer.concat([h.files.get(p) ?? Buffer.alloc(0), Buffer.from(d)]));
      },
      async appendDurable(p, d) {
        h.calls.push({ op: "append", detail: p });
        h.files.set(p, Buffer.concat([h.files.get(p) ?? Buffer.alloc(0), Buffer.from(d)]));
      },
      async createExclusive(p, d) {
        h.calls.push({ op: "create", detail: p });
        if (h.files.has(p)) return false;
        h.files.set(p, Buffer.from(d));
        return true;
      },
      async exists(p) {
        return h.files.has(p) || h.dirs.has(p);
      },
      async stat(p) {
        const b = h.files.get(p);
        const ino = [...h.files.keys(), ...h.dirs].indexOf(p) + 1;
        if (b) return fakeStat(b.length, false, 0o100600, ino);
        if (h.dirs.has(p)) return fakeStat(0, true, 0o40700, ino);
        return undefined;
      },
      async mkdir(p) {
        h.calls.push({ op: "mkdir", detail: p });
        let cur = "";
        for (const part of p.split("/").filter(Boolean)) {
          cur += `/${part}`;
          h.dirs.add(cur);
        }
      },
      async realpath(p) {
        return p;
      },
      async readlink(p) {
        throw Object.assign(new Error(`EINVAL: ${p}`), { code: "EINVAL" });
      },
      async readdir(p) {
        const prefix = p.endsWith("/") ? p : `${p}/`;
        const names = new Set<string>();
        for (const k of [...h.files.keys(), ...h.dirs])
          if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split("/")[0] ?? "");
        names.delete("");
        return [...names];
      },
      async rm(p) {
        h.calls.push({ op: "rm", detail: p });
        for (const k of [...h.files.keys()]) if (k === p || k.startsWith(`${p}/`)) h.files.delete(k);
        for (const k of [...h.dirs]) if (k === p || k.startsWith(`${p}/`)) h.dirs.delete(k);
      },
      async rmdir(p) {
        h.calls.push({ op: "rmdir", detail: p });
        if ([...h.files.keys(), ...h.dirs].some((k) => k.startsWith(`${p}/`)))
          throw Object.assign(new Error(`ENOTEMPTY: ${p}`), { code: "ENOTEMPTY" });
        h.dirs.delete(p);
      },
      async rename(a, b) {
        h.calls.push({ op: "rename", detail: `${a} ${b}` });
        const d = h.files.get(a);
        if (!d) throw Object.assign(new Error(`ENOENT: ${a}`), { code: "ENOENT" });
        h.files.delete(a);
        h.files.set(b, d);
      },
      async chmod(p) {
        h.calls.push({ op: "chmod", detail: p });
      },
      async chown(p) {
        h.calls.push({ op: "chown", detail: p });
      },
      async freeBytes() {
        return 1e12;
      },
      async openWrite(p, append) {
        h.calls.push({ op: "open", detail: p });
        if (!append || !h.files.has(p)) h.files.set(p, Buffer.alloc(0));
        return {
          async write(chunk) {
            h.files.set(p, Buffer.concat([h.files.get(p) ?? Buffer.alloc(0), chunk]));
          },
          async close() {},
        };
      },
      async openRead(p) {
        h.calls.push({ op: "open", detail: p });
        let last = h.files.get(p);
        if (!last) return undefined;
        const ino = [...h.files.keys()].indexOf(p) + 1;
        // In memory a file has no inode: the handle reads what is at p now (the last seen once p is gone).
        const now = () => (last = h.files.get(p) ?? last ?? Buffer.alloc(0));
        return {
          stat: async () => fakeStat(now().length, false, 0o100600, ino),
          read: async (pos, len) => now().subarray(pos, pos + len),
          async close() {},
        };
      },
    },
    http: {
      async request(url, opts) {
        h.calls.push({ op: "http", detail: `${opts.method ?? "GET"} ${url}` });
        return h.onHttp(url, opts.method ?? "GET", opts.headers ?? {});
      },
    },
    sleep: (ms, signal) => delay(ms, undefined, { signal }),
    now: () => Date.now(),
    async which(cmd) {
      return `/usr/bin/${cmd}`;
    },
    async canConnect(ip, port) {
      h.calls.push({ op: "connect", detail: `${ip}:${port}` });
      return true;
    },
    root(dir, label) {
      return memoryRoot(h, dir, label);
    },
    uid: () => 0,
  };
  return h;
}

const fakeStat = (size: number, isDirectory: boolean, mode: number, ino: number): FileStat => ({
  size,
  isDirectory,
  isFile: !isDirectory,
  mode,
  uid: 0,
  gid: 0,
  dev: 1,
  ino,
  inoId: String(ino),
  devId: "0:1",
  rdevId: "0:0",
  mtime: "0.000000000",
  ctime: "0.000000000",
});

// A RootFs over the fake's in-memory files: plain path joins (nothing in memory is a link).
function memoryRoot(h: RecordingHost, root: string, label: string): RootFs {
  const p = (path: string) => `${root}/${path.replace(/^\/+/, "")}`;
  const parents = (path: string) =>
    path
      .split("/")
      .filter(Boolean)
      .map((_, i, a) => `/${a.slice(0, i + 1).join("/")}`);
  return {
    root,
    async kind(path) {
      return h.files.has(p(path)) ? "file" : h.dirs.has(p(path)) ? "dir" : undefined;
    },
    async readFile(path, max = 1024 * 1024) {
      const b = h.files.get(p(path));
      if (b && b.length > max) throw new RootFsError(label, path, `is more than ${max} bytes`);
      return b?.toString("utf8");
    },
    async writeFile(path, data) {
      await h.fs.writeFile(p(path), data);
    },
    async mkdir(path) {
      const made = parents(path).filter((d) => !h.dirs.has(p(d)));
      for (const d of made) await h.fs.mkdir(p(d));
      return made;
    },
    async chown(path) {
      await h.fs.chown(p(path), 0, 0);
    },
    async readlink() {
      return undefined;
    },
    async symlink(target, path) {
      await h.fs.writeFile(p(path), `-> ${target}`);
    },
    async list(path) {
      return h.fs.readdir(p(path));
    },
    async remove(path) {
      await h.fs.rm(p(path));
    },
  };
}
