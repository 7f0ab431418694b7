// A host for --dry-run: reads pass through to the real host, changes are recorded, not made.
import { formatCommand, type Host, rootReads } from "./host.js";

/** Wrap `real` so that nothing changes; `record` receives each change it would have made. */
export function dryHost(real: Host, record: (change: string) => void): Host {
  const ok = (command: string) => ({ command, exitCode: 0, stdout: "", stderr: "" });
  return {
    ...real,
    async exec(cmd, args, opts = {}) {
      if (opts.readOnly) return real.exec(cmd, args, opts);
      const command = formatCommand(cmd, args);
      record(command);
      return ok(command);
    },
    async spawnDetached(cmd, args, opts) {
      record(`${formatCommand(cmd, args)} >>${opts.logFile} 2>&1 &`);
      return 0;
    },
    kill(pid, signal) {
      if (signal === 0) return real.kill(pid, 0);
      record(`kill -${signal} ${pid}`);
      return true;
    },
    fs: {
      ...real.fs,
      async writeFile(p) {
        record(`write ${p}`);
      },
      async appendFile(p) {
        record(`append to ${p}`);
      },
      async appendDurable(p) {
        record(`append to ${p}`);
      },
      async createExclusive(p) {
        record(`create ${p}`);
        return true;
      },
      async mkdir(p) {
        record(`mkdir -p ${p}`);
      },
      async rm(p) {
        record(`rm -rf ${p}`);
      },
      async rmdir(p) {
        record(`rmdir ${p}`);
      },
      async rename(a, b) {
        record(`mv ${a} ${b}`);
      },
      async chmod(p, m) {
        record(`chmod ${m.toString(8)} ${p}`);
      },
      async chown(p, u, g) {
        record(`chown ${u}:${g} ${p}`);
      },
      async openWrite(p) {
        record(`write ${p}`);
        return { write: async () => undefined, close: async () => undefined };
      },
    },
    root(dir, label, idShift) {
      // Reads go to the real confined root (a class: its methods are delegated, never spread).
      const r = real.root(dir, label, idShift);
      return {
        ...rootReads(r),
        async writeFile(p) {
          record(`write ${dir}${p}`);
        },
        async mkdir(p) {
          record(`mkdir -p ${dir}${p}`);
          return [];
        },
        async chown(p, u, g) {
          record(`chown ${u}:${g} ${dir}${p}`);
        },
        async symlink(t, p) {
          record(`ln -sfn ${t} ${dir}${p}`);
        },
        async remove(p) {
          record(`rm ${dir}${p}`);
        },
      };
    },
    http: {
      async request(url, opts) {
        if ((opts.method ?? "GET") === "HEAD") return real.http.request(url, opts);
        record(`download ${url}`);
        return { status: 200, headers: {}, body: (async function* () {})() };
      },
    },
  };
}
