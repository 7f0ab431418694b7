// The table of programs (src/host/programs.ts) against what scripts/install.sh installs, and the
// lists each command derives from it.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { test } from "node:test";
import { allPackages, programsFor } from "../../src/host/programs.js";

const INSTALL = resolve(import.meta.dirname, "../../../scripts/install.sh");
/** Essential on Debian and Ubuntu: always installed, never in install.sh's list. */
const ESSENTIAL = ["coreutils", "perl-base"];

test("scripts/install.sh installs the package of every program aplspawn runs", async () => {
  const script = await readFile(INSTALL, "utf8");
  const line = /apt-get install -y[^\n]*\\\n((?:[^\n]*\\\n)*[^\n]*)/.exec(script)?.[1] ?? "";
  const installed = line.split(/[\s\\]+/).filter(Boolean);
  const missing = allPackages().filter((p) => !installed.includes(p) && !ESSENTIAL.includes(p));
  assert.deepEqual(missing, []);
});

test("each command's programs come from the one table", () => {
  const lab = programsFor("lab");
  assert.ok(lab.includes("systemd-nspawn") && lab.includes("ssh-keygen"));
  assert.ok(!lab.includes("python3") && !lab.includes("debootstrap"), "only what every lab runs");
  assert.ok(programsFor("lab", "privateUsers").includes("python3"));
  assert.ok(!programsFor("imageBuild").includes("debootstrap"), "a --rootfs build needs no debootstrap");
  assert.ok(programsFor("imageBuild", "mirror").includes("debootstrap"));
  assert.deepEqual(programsFor("oci"), ["mksquashfs", "skopeo", "umoci"]);
});
