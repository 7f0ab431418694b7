// Console logs without root: the last N lines of a log and -n's values, text cut into printable
// lines, reading (never through a link, never a FIFO) and following a log through its replacement,
// and the `logs` command's answers (not root, no log, a kept log, -n, --json, escape sequences).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { appendFile, mkdir, rename, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { UsageError } from "../../src/errors.js";
import type { Host } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";
import { LineSplitter, parseLineCount, showLog, tailStart } from "../../src/lab/console-log.js";
import { runMain } from "../support/main-io.js";
import { withTempDir } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

const ESC = String.fromCharCode(27);
const lines = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `line ${i + from}\n`).join("");

test("-n takes a count of lines or all; anything else is a usage error", () => {
  assert.equal(parseLineCount("all"), "all");
  assert.equal(parseLineCount("0"), 0);
  assert.equal(parseLineCount("120"), 120);
  for (const bad of ["-1", "x", "1.5", "", " 3", "1e3"])
    assert.throws(() => parseLineCount(bad), UsageError, JSON.stringify(bad));
});

test("tailStart: where the last n lines start, a last line without newline counting as one", () => {
  const b = (s: string) => Buffer.from(s);
  assert.equal(tailStart(b("a\nb\nc\n"), 2, true), 2);
  assert.equal(tailStart(b("a\nb\nc"), 2, true), 2);
  assert.equal(tailStart(b("a\nb\nc\n"), 3, true), 0);
  assert.equal(tailStart(b("a\nb\nc\n"), 9, true), 0, "fewer lines than asked: all of them");
  assert.equal(tailStart(b("a\nb\nc\n"), 9, false), undefined, "fewer, and more before: read further back");
  assert.equal(tailStart(b("\nc\n"), 1, false), 1, "a newline at the start ends the line before");
  assert.equal(tailStart(b("a\nb\n"), 0, true), 4, "0 lines: nothing");
  assert.equal(tailStart(b(""), 5, true), 0);
  assert.equal(tailStart(b("a\n\n\n"), 2, true), 2, "empty lines are lines");
});

test("LineSplitter: lines cut anywhere (mid-character too) come out whole and printable", () => {
  const out: string[] = [];
  const s = new LineSplitter((l) => out.push(l));
  const text = Buffer.from(`héllo ${ESC}[31mred${ESC}[0m\r\nwörld${ESC}]0;title\x07 end\nlast`);
  for (let i = 0; i < text.length; i += 3) s.push(text.subarray(i, i + 3));
  assert.deepEqual(out, ["héllo red", "wörld end"]);
  s.flush();
  assert.deepEqual(out, ["héllo red", "wörld end", "last"]);
  s.flush();
  assert.equal(out.length, 3, "nothing twice");
});

async function shown(host: Host, path: string, n: number | "all") {
  const out: string[] = [];
  const found = await showLog(host, path, {
    lines: n,
    follow: false,
    signal: new AbortController().signal,
    onLine: (l) => out.push(l),
  });
  return { found, out };
}

test("showLog: the last N lines of a log larger than a read, all of them, none; no log; never a link or a FIFO", () =>
  withTempDir(async (d) => {
    const h = realHost();
    const log = join(d.path, "nspawn.log");
    // ~190 KiB: the last lines are found across three reads back from the end.
    await writeFile(log, lines(20_000));
    assert.deepEqual((await shown(h, log, 3)).out, ["line 19998", "line 19999", "line 20000"]);
    assert.equal((await shown(h, log, "all")).out.length, 20_000);
    assert.deepEqual((await shown(h, log, 0)).out, []);
    assert.deepEqual((await shown(h, join(d.path, "absent"), 5)).found, false);
    await writeFile(log, `a\n${ESC}[2J${ESC}]0;owned\x07b`);
    assert.deepEqual((await shown(h, log, 50)).out, ["a", "b"]);

    const secret = join(d.path, "secret");
    await writeFile(secret, "not for you\n");
    const link = join(d.path, "link.log");
    await symlink(secret, link);
    await assert.rejects(shown(h, link, 5), /link\.log is a symbolic link; aplspawn does not follow it/);
    const fifo = join(d.path, "fifo.log");
    await promisify(execFile)("mkfifo", [fifo]);
    await assert.rejects(shown(h, fifo, 5), /fifo\.log is not a regular file/);
  }));

test("showLog, following: appended lines, then a file put in its place shown from its start, until aborted", () =>
  withTempDir(async (d) => {
    const log = join(d.path, "nspawn.log");
    await writeFile(log, "old 1\nold 2\n");
    const out: string[] = [];
    const stop = new AbortController();
    const arrived = (l: string) =>
      (async () =>
        assert.ok(
          await waitFor(() => out.includes(l), 2000, 10),
          `${l} was shown: ${JSON.stringify(out)}`,
        ))();
    const following = showLog(realHost(), log, {
      lines: 1,
      follow: true,
      signal: stop.signal,
      everyMs: 10,
      onLine: (l) => out.push(l),
    });
    await arrived("old 2");
    await appendFile(log, "new 1\npart");
    await arrived("new 1");
    await appendFile(log, "ial\n");
    await arrived("partial");
    // The container set up again: its old log gone, a new one in its place.
    await rename(log, join(d.path, "moved.log"));
    await writeFile(log, "--- aplspawn: starting x at now\nboot\n");
    await arrived("boot");
    stop.abort();
    assert.equal(await following, true);
    assert.deepEqual(out, ["old 2", "new 1", "partial", "--- aplspawn: starting x at now", "boot"]);
  }));

const cli = (argv: string[], host: Host) => runMain(argv, { host });

test("logs command: needs root, prints the last lines printable, -n, a kept log named when there is no log", () =>
  withTempDir(async (d) => {
    const config = join(d.path, "lab.yaml");
    await writeFile(config, `workdir: ${d.path}/w\nlab: lg\ncontainers: {count: 2, prefix: lg}\n`);
    const root: Host = { ...realHost(), uid: () => 0 };
    const user: Host = { ...realHost(), uid: () => 1000 };
    const notRoot = await cli(["-c", config, "logs", "lg10"], user);
    assert.equal(notRoot.code, 1);
    assert.match(notRoot.err, /logs must run as root: the lab's directory .*\/w\/lg is root's alone/);
    assert.equal((await cli(["-c", config, "logs", "lg99"], root)).code, 2, "no such container");
    assert.equal((await cli(["-c", config, "logs", "lg10", "-n", "many"], root)).code, 2);

    const none = await cli(["-c", config, "logs", "lg10"], root);
    assert.equal(none.code, 1);
    assert.match(none.err, /lg10 has no log \(.*\/containers\/lg10\/nspawn\.log\)/);

    const dir = join(d.path, "w", "lg", "containers", "lg10");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "nspawn.log"), `${lines(60)}${ESC}]0;pwned\x07${ESC}[1mbold${ESC}[0m\n`);
    const tail = await cli(["-c", config, "logs", "lg10"], root);
    assert.equal(tail.code, 0, tail.err);
    assert.equal(tail.out.split("\n").length, 51, "50 lines by default");
    assert.ok(tail.out.endsWith("line 60\nbold\n"), tail.out.slice(-40));
    assert.ok(!tail.out.includes(ESC), "no escape sequence reaches the terminal");
    assert.equal((await cli(["-c", config, "logs", "lg10", "-n", "2"], root)).out, "line 60\nbold\n");
    assert.equal((await cli(["-c", config, "logs", "lg10", "-n", "all"], root)).out.split("\n").length, 62);
    const json = await cli(["-c", config, "--json", "logs", "lg10", "-n", "1"], root);
    assert.deepEqual(JSON.parse(json.out), { container: "lg10", line: "bold" });

    const kept = join(d.path, "w", "lg", "logs", "2026-11-30T204500.123Z-0a1b2c", "lg11.log");
    await mkdir(join(kept, ".."), { recursive: true });
    await writeFile(kept, "Failed\n");
    const k = await cli(["-c", config, "logs", "lg11"], root);
    assert.equal(k.code, 1);
    assert.match(k.err, /lg11 has no log now \(.*\); the log a failed run kept of it is .*lg11\.log/);
    assert.ok(k.err.includes(kept));
  }));
