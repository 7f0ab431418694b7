// Run by host-files.test.ts (in a PID namespace of its own, so the PIDs it gets are small and
// known): writes argv's text to a file as the lab's owner, through src/lab/owner.ts.
// argv: --aplspawn-owner-write FILE MODE UID GID HOME TEXT
import { realHost } from "../../../src/host/real-host.js";
import { ownerFs } from "../../../src/lab/owner.js";

if (process.argv[2] === "--aplspawn-owner-write") {
  const [file = "", mode = "", uid = "", gid = "", home = "", text = ""] = process.argv.slice(3);
  const owner = { name: "apltest", uid: Number(uid), gid: Number(gid), home };
  ownerFs({ host: realHost(), signal: new AbortController().signal }, owner)
    .write(file, text, Number.parseInt(mode, 8))
    .catch((e: Error) => {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 1;
    });
}
