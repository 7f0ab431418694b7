// How a file is written as the lab's owner, in their home or their directory, where another user
// may be able to put things too (a shared project directory): by a small program of ours, run as
// them (setpriv) on the Node that runs aplspawn, never by a shell. It writes a new file at a fresh,
// random name beside the target (O_CREAT|O_EXCL|O_NOFOLLOW: never a file or a link found there),
// sets its mode through the descriptor, syncs it and renames it over the target. The shell it
// replaces wrote to "$1.aplspawn-$$", a name anyone could guess and plant a link at, through
// `cat >`, which followed it.

// Run with `node -e`: argv is [file, mode in octal]; the content comes on stdin.
const PROGRAM = `
const fs = require("node:fs");
const { basename, dirname, join } = require("node:path");
const { randomBytes } = require("node:crypto");
const C = fs.constants;
function writeOne(file, mode, data) {
  let tmp;
  let fd;
  for (let tries = 1; fd === undefined; tries++) {
    tmp = join(dirname(file), "." + basename(file) + ".aplspawn-" + randomBytes(8).toString("hex") + ".tmp");
    try {
      fd = fs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    } catch (e) {
      if (e.code !== "EEXIST" || tries >= 5) throw e;
    }
  }
  try {
    fs.fchmodSync(fd, mode);
    for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
try {
  const args = process.argv.slice(1);
  const data = fs.readFileSync(0);
  if (args[0] === "--many") {
    // stdin: {"dirs": [path…], "files": [{"path", "mode", "text"}…]}: the directories first (as
    // mkdir -p -m 0700 makes them), then each file as above; one process for all.
    const { dirs, files } = JSON.parse(data.toString("utf8"));
    for (const d of dirs) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    for (const f of files) writeOne(f.path, f.mode, Buffer.from(f.text, "utf8"));
  } else writeOne(args[0], parseInt(args[1], 8), data);
} catch (e) {
  process.stderr.write(String(e && e.message) + "\\n");
  process.exit(1);
}
`;

/** Files and the directories to make first, written by one process (`--many`, JSON on stdin). */
export interface OwnerWrites {
  dirs: string[];
  files: { path: string; mode: number; text: string }[];
}

/** The command that writes `writes` (given as its stdin) in one process, run as the owner. */
export function ownerWriteManyCommand(): [string, string[]] {
  return [process.execPath, ["-e", PROGRAM, "--", "--many"]];
}

/** The command that writes stdin to `path` with `mode`, run as the owner: [cmd, args]. */
export function ownerWriteCommand(path: string, mode: number): [string, string[]] {
  return [process.execPath, ["-e", PROGRAM, "--", path, mode.toString(8)]];
}
