// The lab boot profile's ssh host keys, for real, as root in a private namespace, on the test image
// (built by aplspawn: its ssh.service runs `ssh-keygen -A` before each start). With `boot: lab` a
// container's first boot makes no RSA or ECDSA key (sshd serves the ed25519 key aplspawn pinned, and
// a 3072-bit RSA key costs up to a second of CPU on the way to sshd), yet a role that names an RSA
// host key in sshd's config and restarts sshd gets it made, as with the image's own drop-in. With
// `boot: full` (`run reset` onto the image's clean state) the image boots as it is: every key type
// is made at boot and aplspawn's drop-in is gone. Nothing of the lab is left.
import assert from "node:assert/strict";
import { labTest, ok } from "../support/lab.js";

const NAME = "bpk-10";
const DROP_IN = "/etc/systemd/system/ssh.service.d/aplspawn-boot.conf";

labTest(
  "boot lab: a first boot makes only the host key sshd serves, a role's RSA HostKey is still made at sshd's restart; boot full makes them all",
  { name: "bpk", subnet: 149, containers: { count: 1, boot: "lab" } },
  async (lab) => {
    const sh = async (script: string) =>
      ok(await lab.cli(["exec", NAME, "--", "/bin/sh", "-c", script]), script).stdout;
    const keys = async () =>
      (await sh("ls /etc/ssh"))
        .split("\n")
        .filter((f) => /^ssh_host_\w+_key$/.test(f))
        .sort();
    const generated = async () =>
      (await sh("journalctl -b -u ssh --no-pager")).includes("generating new host keys");

    ok(await lab.cli(["run", "up"]), "run up, boot lab");
    assert.deepEqual(await keys(), ["ssh_host_ed25519_key"], "only the pinned key after the first boot");
    assert.equal(await generated(), false, "ssh-keygen made nothing at boot");
    assert.match(await sh(`cat ${DROP_IN}`), /sshd -T/);

    // A role's sshd config that serves an RSA key too, then a restart: the key is made first.
    await sh("printf 'HostKey /etc/ssh/ssh_host_rsa_key\\n' > /etc/ssh/sshd_config.d/zz-role.conf");
    await sh("systemctl restart ssh");
    assert.equal((await sh("systemctl is-active ssh")).trim(), "active");
    assert.ok((await keys()).includes("ssh_host_rsa_key"), (await keys()).join(", "));
    assert.equal(await generated(), true, "made at the restart");
    // sshd answers over ssh (the pinned key is still the one served).
    ok(await lab.cli(["ssh", NAME, "--", "true"]), "aplspawn ssh after the restart");

    // boot: full, on the image's clean state: the image's own drop-in makes every type at boot.
    await lab.writeConfig({ containers: { count: 1, boot: "full" } });
    ok(await lab.cli(["run", "reset", "--only", NAME]), "run reset, boot full");
    assert.deepEqual(
      await keys(),
      ["ssh_host_ecdsa_key", "ssh_host_ed25519_key", "ssh_host_rsa_key"],
      "the image as it is",
    );
    assert.equal(await generated(), true, "made at boot");
    assert.equal((await sh(`test -e ${DROP_IN} && echo there || echo gone`)).trim(), "gone");
    ok(await lab.cli(["run", "down"]), "run down");
  },
);
