// The lab boot profile (containers.boot: lab): drop-ins in the container's upper layer (never the
// image) that skip, in a container, what a test target does not need on the way to a reachable
// sshd. Each is a condition (ConditionVirtualization=!container), so the unit stays installed and
// shows as skipped ("condition failed"), not failed or masked; a unit a playbook starts by hand is
// still skipped, so only units no role manages are listed. `full` removes these drop-ins and boots
// the image as it is. README "Lab boot profile" lists each unit with why.
import { containerRoot, rootHolds, rootWriteIfChanged } from "../../src/lab/container-files.js";
import { defineTask } from "../../src/runner/task.js";

export interface BootProfileParams {
  name: string;
  merged: string;
  boot: "lab" | "full";
}

/** The units skipped by the lab profile. */
export const LAB_SKIPPED_UNITS = [
  // A login prompt on the console: nobody logs in there; aplspawn enters through nsenter and ssh.
  "console-getty.service",
  // Moves the journal from /run to /var/log: journalctl reads /run/log/journal the same.
  "systemd-journal-flush.service",
] as const;
// Not listed: systemd-firstboot and systemd-machine-id-commit are already skipped by their own
// conditions in a container of a built image (measured: inactive, condition false, under `full`
// too), so a drop-in gains nothing; systemd-resolved, logind and user@.service are units roles
// manage or use (DNS, become, `systemctl --user`).

const DROP_IN = "aplspawn-boot.conf";
const dropInPath = (unit: string) => `/etc/systemd/system/${unit}.d/${DROP_IN}`;
const DROP_IN_TEXT =
  "# Written by aplspawn (containers.boot: lab): not needed in a test container; `boot: full` removes this.\n[Unit]\nConditionVirtualization=!container\n";

/** Writes (lab) or removes (full) the lab profile's drop-ins. */
export const containerBootProfile = defineTask<BootProfileParams, null>({
  kind: "container.boot-profile",
  title: (p) =>
    p.boot === "lab"
      ? `Skipping units a test target does not need in container ${p.name} (containers.boot: lab)`
      : `Booting container ${p.name} as the image is (containers.boot: full)`,
  async check(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    for (const u of LAB_SKIPPED_UNITS) {
      const there = await rootHolds(r, dropInPath(u), DROP_IN_TEXT);
      if (there !== (p.boot === "lab")) return false;
    }
    return true;
  },
  async run(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    for (const u of LAB_SKIPPED_UNITS) {
      if (p.boot === "full") {
        if ((await r.readFile(dropInPath(u))) === DROP_IN_TEXT) await r.remove(dropInPath(u));
        continue;
      }
      await r.mkdir(`/etc/systemd/system/${u}.d`, { mode: 0o755 });
      await rootWriteIfChanged(r, dropInPath(u), DROP_IN_TEXT, { mode: 0o644 });
    }
    return null;
  },
});
