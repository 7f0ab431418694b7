// The terminal a user watches, for real: `run up` of 10 containers in a tmux pane of 100×60. The
// tree stays short (the network and image collapsed to one line once done, each container that is
// up to one line, the group counting "10/10 ready"), then the lab table; a dry run on the terminal
// shows the commands it would run.
import assert from "node:assert/strict";
import { execa } from "execa";
import { assertNoResidue, labTest, ok } from "../support/lab.js";
import { CLI } from "../support/ns.js";
import { waitFor } from "../support/wait.js";

const ROWS = 60;

/**
 * Run argv in a new tmux pane (ROWS high) and return its screen once the command ended. The limit
 * is a guard against a hang, not a speed check: in a full suite (three files side by side on two
 * cores) ten containers once took over 300 s to boot, alone they take about 70 s.
 */
async function onScreen(session: string, argv: string[], timeoutMs = 900_000): Promise<string> {
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  await execa("tmux", [
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    "100",
    "-y",
    String(ROWS),
    `env -u CI -u SUDO_USER -u SUDO_UID -u SUDO_GID TERM=xterm-256color ${quoted}; echo "EXIT:$?"; sleep 3600`,
  ]);
  try {
    let screen = "";
    const ended = await waitFor(
      async () => {
        screen = (await execa("tmux", ["capture-pane", "-p", "-t", session])).stdout;
        return /^EXIT:\d+$/m.test(screen);
      },
      timeoutMs,
      500,
    );
    assert.ok(ended, `timed out; the screen:\n${screen}`);
    return screen;
  } finally {
    await execa("tmux", ["kill-session", "-t", session], { reject: false });
  }
}

labTest(
  "the terminal at N=10: run up fits the screen, containers collapsed and counted; a dry run shows its commands",
  {
    name: "term",
    subnet: 62,
    requires: ["tmux"],
    containers: { count: 10, init: "script" },
    inventory: { ping: false },
  },
  async (lab) => {
    const [cmd, args] = lab.ns.wrap(process.execPath, [CLI, "-c", lab.config, "run", "up"], lab.dir);
    const screen = await onScreen(`aplspawn-term-${process.pid}`, [cmd, ...args]);
    assert.match(screen, /^EXIT:0$/m, screen);
    assert.match(screen, /Starting 10 containers \(10\/10 ready\)/, screen);
    for (let i = 10; i < 20; i++)
      assert.equal(
        screen.split("\n").filter((l) => l.includes(`Container term-${i},`)).length,
        1,
        `term-${i} once:\n${screen}`,
      );
    // Collapsed: no container's own steps are left on the screen.
    assert.doesNotMatch(
      screen,
      /Mounting overlayFS for container|Checking ssh connection to|Generating SSH host key for container/,
      screen,
    );
    // The whole of it, up to the lab table's end, is on the screen: nothing scrolled away, and
    // the tree (up to the table) is a line per step of the lab and per container.
    const lines = screen.split("\n");
    const first = lines.findIndex((l) => /Preparing the network, the image and the lab key/.test(l));
    const table = lines.findIndex((l) => /^Lab term: 10 containers/.test(l));
    assert.ok(first >= 0 && table > first, screen);
    assert.ok(table - first <= 20, `the tree takes ${table - first} lines:\n${screen}`);
    assert.match(screen, /ssh term-10$/m, screen);

    const [sc, sa] = lab.ns.wrap(
      process.execPath,
      [CLI, "-c", lab.config, "run", "stop", "--only", "term-10", "--dry-run"],
      lab.dir,
    );
    const stop = await onScreen(`aplspawn-stop-${process.pid}`, [sc, ...sa], 120_000);
    assert.match(stop, /^EXIT:0$/m, stop);
    assert.match(stop, /would change/, stop);
    assert.match(stop, /Stopping container term-10/, stop);

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after down");
  },
);
