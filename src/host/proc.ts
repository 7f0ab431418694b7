// Processes as /proc shows them, read through the Host (so tests can fake it): the one reader of
// argv, state, start time and children that the rest of aplspawn asks.
import type { Host } from "./host.js";

/** The argv of a process, or undefined when it is gone. */
export async function cmdline(host: Host, pid: number): Promise<string[] | undefined> {
  try {
    const raw = await host.fs.readFile(`/proc/${pid}/cmdline`);
    if (raw === "") return undefined; // zombies and kernel threads have none
    return raw.replace(/\0$/, "").split("\0");
  } catch {
    return undefined;
  }
}

/** State letter and start time (clock ticks since boot) from /proc/PID/stat; undefined when gone. */
export async function procStat(
  host: Host,
  pid: number,
): Promise<{ state: string; start: number } | undefined> {
  try {
    const s = await host.fs.readFile(`/proc/${pid}/stat`);
    // comm is in parentheses and may hold spaces or ")": the fields after the last ")" are fixed.
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] ?? "?", start: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

/** Whether a process runs (a zombie has finished: it is only waiting to be reaped). */
export async function isAlive(host: Host, pid: number): Promise<boolean> {
  const st = await procStat(host, pid);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
}

/** The children of a process, from every one of its threads. */
export async function childrenOf(host: Host, pid: number): Promise<number[]> {
  try {
    const out: number[] = [];
    for (const tid of await host.fs.readdir(`/proc/${pid}/task`)) {
      const text = await host.fs.readFile(`/proc/${pid}/task/${tid}/children`).catch(() => "");
      for (const w of text.split(/\s+/)) if (w) out.push(Number(w));
    }
    return out;
  } catch {
    return [];
  }
}

/** Every PID in /proc. */
export async function allPids(host: Host): Promise<number[]> {
  return (await host.fs.readdir("/proc")).filter((n) => /^\d+$/.test(n)).map(Number);
}

/** The network namespace of a process (ours by default), as its inode number; undefined when gone. */
export async function netnsOf(host: Host, pid: number | "self" = "self"): Promise<string | undefined> {
  const link = await host.fs.readlink(`/proc/${pid}/ns/net`).catch(() => "");
  return /^net:\[(\d+)\]$/.exec(link)?.[1];
}
