// Console logs, for real, as root in a private namespace: a run that fails once a container's nspawn
// started keeps the logs of the containers it rolled back under the lab's directory and its error
// says where; `logs NAME` names that kept log while the container is gone, shows the last lines of
// a running container (-n), and `logs -f` prints what the container writes to its console and goes
// on through the container being set up again; a container flooding its console fills its log up
// to containers.consoleLogMax and runs on, its next start moving that log aside; a plain down keeps the kept logs, --purge deletes
// them, and nothing of the lab is left.
import assert from "node:assert/strict";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { assertNoResidue, killNspawns, labTest, ok } from "../support/lab.js";
import { waitFor } from "../support/wait.js";

const ESC = String.fromCharCode(27);
const LOG_MAX = 65536;
const DROPPED = `--- aplspawn: console output beyond ${LOG_MAX} bytes dropped until the container starts again`;
const mode = async (p: string) => ((await stat(p)).mode & 0o777).toString(8);

labTest(
  "a failed up keeps its containers' logs and says where; logs shows, tails and follows a container's console; down --purge removes the kept logs",
  { name: "lgs", subnet: 57, containers: { count: 2, consoleLogMax: LOG_MAX }, inventory: { ping: false } },
  async (lab) => {
    const labDir = join(lab.workdir, "lgs");
    const failed = await lab.cli(["run", "up"], { APLSPAWN_FAIL_AFTER: "container.nspawn[lgs-11]" });
    assert.equal(failed.exitCode, 1, `${failed.stdout}\n${failed.stderr}`);
    const where = /the logs of the containers this run rolled back are kept in (\S+)/.exec(failed.stderr);
    assert.ok(where?.[1], `the error names the kept logs:\n${failed.stderr}`);
    const runDir = where[1];
    assert.equal(join(runDir, ".."), join(labDir, "logs"), "under the lab's directory, by run");
    assert.match(runDir, /\/logs\/\d{4}-\d{2}-\d{2}T\d{6}\.\d{3}Z-[0-9a-f]{6}$/);
    assert.equal(await mode(join(labDir, "logs")), "700");
    assert.equal(await mode(runDir), "700");
    const kept = join(runDir, "lgs-11.log");
    assert.equal(await mode(kept), "600");
    const text = await readFile(kept, "utf8");
    assert.match(text, /^--- aplspawn: starting lgs-11 at \d{4}-/, text);
    // nspawn's own words, written after the marker: the container started, then was stopped.
    assert.match(text, /Spawning container lgs-11/, text);
    for (const f of await readdir(runDir)) assert.match(f, /^lgs-1[01]\.log$/);
    assert.deepEqual(await readdir(join(labDir, "containers")).catch(() => []), []);

    const gone = await lab.cli(["logs", "lgs-11"]);
    assert.equal(gone.exitCode, 1);
    assert.ok(gone.stderr.includes(`the log a failed run kept of it is ${kept}`), gone.stderr);

    ok(await lab.cli(["run", "up"]), "run up");
    // The container still writes to its console: the whole log is read last, and holds the rest.
    // (The CLI's final newline is stripped by execa.)
    const last = ok(await lab.cli(["logs", "lgs-10", "-n", "1"]), "logs -n 1").stdout;
    assert.ok(last.length > 0 && !last.includes("\n"), `one line: ${JSON.stringify(last)}`);
    const tail = ok(await lab.cli(["logs", "lgs-10"]), "logs").stdout;
    assert.ok(tail.split("\n").length <= 50, "the last 50 lines at most");
    const all = ok(await lab.cli(["logs", "lgs-10", "-n", "all"]), "logs -n all").stdout;
    assert.match(all, /^--- aplspawn: starting lgs-10 at /, "a new log, from its start");
    assert.ok(all.split("\n").length > 50, "more than 50 lines in all");
    assert.ok(all.split("\n").includes(last) && all.includes(tail), "lines of the log");

    /** What `script` prints, written to lgs-10's console from inside it. */
    const toConsole = (script: string) =>
      lab.cli(["exec", "lgs-10", "--", "sh", "-c", `${script} > /dev/console`]);

    // Following: what the container writes to its console, escape sequences removed; then the
    // container set up again (stop removes its directory and log, spawn makes new ones).
    const child = lab.spawnCli(["logs", "lgs-10", "-f", "-n", "0"]);
    const seen: string[] = [];
    let raw = "";
    child.stdout!.on("data", (b: Buffer) => {
      raw += b.toString("utf8");
    });
    createInterface({ input: child.stdout! }).on("line", (l) => seen.push(l));
    const exited = new Promise<number | null>((res) => child.once("close", (code) => res(code)));
    const shown = async (re: RegExp, what: string) =>
      assert.ok(
        await waitFor(() => seen.some((l) => re.test(l)), 60_000, 100),
        `${what}: ${JSON.stringify(seen)}`,
      );
    try {
      // Until the follower runs, what is written would fall before its start (-n 0).
      await waitFor(
        async () => {
          if (seen.some((l) => l.includes("hello"))) return true;
          ok(await toConsole(`printf 'hello \\033[31mfrom\\033[0m \\033]0;title\\007console\\n'`), "exec");
          return false;
        },
        15_000,
        500,
      );
      await shown(/^hello from console$/, "a line written to the container's console");
      ok(await lab.cli(["run", "stop", "--only", "lgs-10"]), "stop --only");
      ok(await lab.cli(["run", "spawn", "--only", "lgs-10"]), "spawn --only");
      await shown(/^--- aplspawn: starting lgs-10 at /, "the new log, from its start");
    } finally {
      child.kill("SIGINT");
    }
    assert.equal(await exited, 0, "Ctrl-C ends following");
    assert.ok(!raw.includes(ESC), "no escape sequence reaches the terminal");

    // A container that floods its console (one line without an end: the relay must not wait for
    // newlines, nor hold what it reads): the log keeps consoleLogMax bytes and a line saying
    // the rest was dropped, the container runs on (its console never blocks), and its next start
    // moves that log to nspawn.log.1 and starts anew.
    const log = join(labDir, "containers", "lgs-10", "nspawn.log");
    ok(await toConsole("yes console-flood | tr -d '\\n' | head -c 600000"), "flooding the console");
    let flooded = "";
    await waitFor(
      async () => {
        flooded = await readFile(log, "utf8");
        return flooded.includes(DROPPED);
      },
      10_000,
      100,
    );
    assert.ok(flooded.includes(DROPPED), `the log says where it stops:\n${flooded.slice(-500)}`);
    const size = (await stat(log)).size;
    assert.ok(size <= LOG_MAX + 256, `the log holds at most consoleLogMax: ${size} bytes`);
    assert.ok(size > LOG_MAX / 2, `and is filled up to it: ${size} bytes`);
    const after = ok(await lab.cli(["exec", "lgs-10", "--", "echo", "still here"]), "exec after the flood");
    assert.match(after.stdout, /still here/);
    assert.equal((await stat(log)).size, size, "nothing more is kept of this start");
    assert.equal(await killNspawns(lab.machinesDir), 2, "both containers killed");
    ok(await lab.cli(["run", "up"]), "run up after the containers were killed");
    assert.equal(
      (await readFile(`${log}.1`, "utf8")).length,
      flooded.length,
      "the flooded log is nspawn.log.1",
    );
    assert.match(await readFile(log, "utf8"), /^--- aplspawn: starting lgs-10 at /, "a new log");
    const small = join(labDir, "containers", "lgs-11", "nspawn.log");
    await assert.rejects(stat(`${small}.1`), "a log under half the bound goes on in place");
    assert.equal(
      (await readFile(small, "utf8")).match(/^--- aplspawn: starting lgs-11 at /gm)?.length,
      2,
      "two starts in one log",
    );

    ok(await lab.cli(["run", "down"]), "run down");
    assert.ok((await readdir(runDir)).includes("lgs-11.log"), "a plain down keeps the kept logs");
    ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
    await assert.rejects(stat(join(labDir, "logs")), "--purge deletes the kept logs");
    await assertNoResidue(lab, "after run down --purge");
  },
);
