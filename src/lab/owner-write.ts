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
try {
  const [file, modeText] = process.argv.slice(1);
  const data = fs.readFileSync(0);
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
    fs.fchmodSync(fd, parseInt(modeText, 8));
    for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
} catch (e) {
  process.stderr.write(String(e && e.message) + "\\n");
  process.exit(1);
}
`;

/** The command that writes stdin to `path` with `mode`, run as the owner: [cmd, args]. */
export function ownerWriteCommand(path: string, mode: number): [string, string[]] {
  return [process.execPath, ["-e", PROGRAM, "--", path, mode.toString(8)]];
}
