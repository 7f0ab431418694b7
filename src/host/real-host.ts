// The real host: commands (exec.ts), files (real-fs.ts, with durable.ts's writes), file locks
// (lock-file.ts), HTTP (http.ts) and confined roots (root-fs.ts), composed; the few calls that
// are one line of Node are here.
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { exec, spawnDetached } from "./exec.js";
import type { Host } from "./host.js";
import { realHttp } from "./http.js";
import { lockFile } from "./lock-file.js";
import { realFs } from "./real-fs.js";
import { rootFs } from "./root-fs.js";

/** Whether a TCP connection to ip:port opens within timeoutMs. */
function canConnect(ip: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port, signal });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The host aplspawn runs on. */
export function realHost(): Host {
  return {
    exec,
    spawnDetached,
    lockFile,
    kill(pid, signal) {
      // A PID of 0 or below signals a whole process group or every process: never what is meant (a
      // group-wide SIGTERM from a test run's process was seen killing the whole `npm test`).
      if (!Number.isInteger(pid) || pid <= 0) return false;
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
    fs: realFs,
    http: realHttp,
    sleep: (ms, signal) => delay(ms, undefined, { signal }),
    now: () => Date.now(),
    canConnect,
    root: rootFs,
    uid: () => process.geteuid?.() ?? -1,
    async which(cmd) {
      for (const dir of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
        const p = join(dir, cmd);
        try {
          await fs.access(p, fsConstants.X_OK);
          return p;
        } catch {}
      }
      return undefined;
    },
  };
}
