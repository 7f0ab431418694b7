// The lab boot profile (containers.boot: lab): drop-ins in the container's upper layer (never the
// image) that skip, in a container, what a test target does not need on the way to a reachable
// sshd. Each is a condition (ConditionVirtualization=!container), so the unit stays installed and
// shows as skipped ("condition failed"), not failed or masked; a unit a playbook starts by hand is
// still skipped, so only units no role manages are listed. In an image aplspawn built, sshd makes
// only the host keys its config names (the one aplspawn pinned), not every type at every first
// boot. `full` removes these drop-ins and boots the image as it is. README "Lab boot profile" lists
// each with why.

import type { RootFs } from "../../src/host/host.js";
import { SSH_HOST_KEYS_DROP_IN } from "../../src/image/build-plan.js";
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

/**
 * The image's `ssh-keygen -A` before each start of sshd makes every missing key type: a 3072-bit RSA
 * key costs 0.3-1.3 s of CPU at a container's first boot, on the way to sshd, for a key sshd never
 * serves (hostkeys.ts configures the one ed25519 key it pinned). This drop-in (named to come after
 * the image's) runs it only when sshd's own config names a host key file that is missing, or when
 * `sshd -T` cannot read that config: a role that configures an RSA host key and restarts sshd gets
 * it made, as with the image's drop-in. Only over that very drop-in (an image aplspawn built): the
 * unit of another image is not known here.
 */
const SSH_KEYS = {
  path: `/etc/systemd/system/ssh.service.d/${DROP_IN}`,
  text: [
    "# Written by aplspawn (containers.boot: lab): make the host keys sshd's config names, not every type; `boot: full` removes this.",
    "[Service]",
    "ExecStartPre=",
    // systemd's own `$$` is the shell's `$`.
    `ExecStartPre=/bin/sh -c 'k=$$(/usr/sbin/sshd -T 2>/dev/null) || exec /usr/bin/ssh-keygen -A; echo "$$k" | while read -r w f; do [ "$$w" != hostkey ] || [ -e "$$f" ] || exec /usr/bin/ssh-keygen -A; done'`,
    "ExecStartPre=/usr/sbin/sshd -t",
    "",
  ].join("\n"),
};

const UNIT_DROP_INS = LAB_SKIPPED_UNITS.map((u) => ({ path: dropInPath(u), text: DROP_IN_TEXT }));
/** Every drop-in the lab profile may write (what `full` removes). */
const ALL_DROP_INS = [...UNIT_DROP_INS, SSH_KEYS];

/** The lab profile's drop-ins for this container's root: the units', and the ssh one over the image's. */
async function labDropIns(r: RootFs): Promise<readonly { path: string; text: string }[]> {
  const built = await rootHolds(r, SSH_HOST_KEYS_DROP_IN.path, SSH_HOST_KEYS_DROP_IN.text);
  return built ? ALL_DROP_INS : UNIT_DROP_INS;
}

/** Writes (lab) or removes (full) the lab profile's drop-ins. */
export const containerBootProfile = defineTask<BootProfileParams, null>({
  kind: "container.boot-profile",
  title: (p) =>
    p.boot === "lab"
      ? `Skipping units a test target does not need in container ${p.name} (containers.boot: lab)`
      : `Booting container ${p.name} as the image is (containers.boot: full)`,
  async check(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    const wanted = p.boot === "lab" ? await labDropIns(r) : [];
    for (const d of ALL_DROP_INS) {
      const there = await rootHolds(r, d.path, d.text);
      if (there !== wanted.includes(d)) return false;
    }
    return true;
  },
  async run(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    const wanted = p.boot === "lab" ? await labDropIns(r) : [];
    for (const d of ALL_DROP_INS) {
      if (!wanted.includes(d)) {
        if (await rootHolds(r, d.path, d.text)) await r.remove(d.path);
        continue;
      }
      await r.mkdir(d.path.slice(0, d.path.lastIndexOf("/")), { mode: 0o755 });
      await rootWriteIfChanged(r, d.path, d.text, { mode: 0o644 });
    }
    return null;
  },
});
