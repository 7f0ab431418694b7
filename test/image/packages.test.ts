// image.packages: an image's os-release read as hostile input, the manager it names, the commands
// run, the default set and the layer's cache key.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configSchema } from "../../config/schema.js";
import {
  installScript,
  layerKey,
  layerPath,
  packageManagerOf,
  packagesToInstall,
  parseOsRelease,
  unknownManagerMessage,
} from "../../src/image/packages.js";

const manager = (text: string) => {
  const os = parseOsRelease(text);
  return os && packageManagerOf(os);
};

test("image.packages: os-release names the package manager by ID, else by ID_LIKE", () => {
  assert.equal(manager('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\n'), "apt");
  assert.equal(manager("ID=ubuntu\nID_LIKE=debian\n"), "apt");
  assert.equal(manager('ID="linuxmint"\nID_LIKE="ubuntu debian"\n'), "apt");
  assert.equal(manager('ID="rocky"\nID_LIKE="rhel centos fedora"\n'), "dnf");
  assert.equal(manager("ID=fedora\n"), "dnf");
  assert.equal(manager('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n'), "zypper");
  assert.equal(manager("ID='arch'\n"), "pacman");
  assert.equal(manager("ID=manjaro\nID_LIKE=arch\n"), "pacman");
  assert.equal(manager("ID=alpine\n"), undefined);
});

test("image.packages: a hostile os-release yields no ID rather than anything odd", () => {
  for (const bad of [
    "",
    "ID=\n",
    "ID=Debian\n",
    "ID=../../etc\n",
    "ID=deb ian\n",
    'ID="debian\n',
    "ID=debi\u0000an\n",
    "ID=debian\u001b[2J\n",
    "ID=$(reboot)\n",
    `ID=${"a".repeat(65)}\n`,
    `${"#".repeat(70 * 1024)}\nID=debian\n`,
  ])
    assert.equal(parseOsRelease(bad), undefined, JSON.stringify(bad.slice(0, 40)));
  // Words of ID_LIKE that are not valid ids are dropped, not passed on.
  assert.deepEqual(parseOsRelease('ID=x\nID_LIKE="debian $(reboot) ../y"\n')?.idLike, ["debian"]);
  assert.match(unknownManagerMessage(parseOsRelease("ID=alpine\n")), /ID=alpine.*image\.packages: \[\]/);
  assert.match(unknownManagerMessage(undefined), /no valid os-release/);
});

test("image.packages: unset installs the default set only when sshd or python3 is missing; [] never", () => {
  const both = { sshd: true, python3: true };
  assert.deepEqual(packagesToInstall(undefined, both, "apt"), []);
  assert.deepEqual(packagesToInstall(undefined, { sshd: false, python3: true }, "apt"), [
    "openssh-server",
    "python3",
    "sudo",
  ]);
  assert.deepEqual(packagesToInstall(undefined, { sshd: true, python3: false }, "pacman"), [
    "openssh",
    "python",
    "sudo",
  ]);
  assert.deepEqual(packagesToInstall([], { sshd: false, python3: false }, "apt"), []);
  assert.deepEqual(packagesToInstall(["vim"], both, "dnf"), ["vim"]);
});

test("image.packages: each manager's non-interactive install line; a bad name is refused", () => {
  assert.ok(
    installScript("apt", ["openssh-server", "python3"]).startsWith(
      "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update; apt-get install -y --no-install-recommends -- openssh-server python3; apt-get clean; rm -rf /var/lib/apt/lists/*; ",
    ),
  );
  assert.match(installScript("dnf", ["sudo"]), /dnf -y install sudo/);
  assert.match(installScript("zypper", ["sudo"]), /zypper -n install sudo/);
  assert.match(installScript("pacman", ["sudo"]), /pacman -Sy --noconfirm sudo/);
  // sshd enabled at boot whatever the manager's packages do (Arch's and openSUSE's leave it off).
  for (const m of ["apt", "dnf", "zypper", "pacman"] as const)
    assert.match(installScript(m, ["sudo"]), /systemctl enable "\$u\.service"/);
  assert.throws(() => installScript("apt", ["x; reboot"]), /not a package name/);
  assert.throws(() => installScript("apt", []), /no packages/);
});

test("image.packages: the layer key is the image, the manager and the package set, whatever the order", () => {
  const k = layerKey("a".repeat(64), "apt", ["sudo", "python3", "openssh-server"]);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(layerKey("a".repeat(64), "apt", ["openssh-server", "sudo", "python3", "sudo"]), k);
  assert.notEqual(layerKey("b".repeat(64), "apt", ["sudo", "python3", "openssh-server"]), k);
  assert.notEqual(layerKey("a".repeat(64), "dnf", ["sudo", "python3", "openssh-server"]), k);
  assert.notEqual(layerKey("a".repeat(64), "apt", ["sudo", "python3"]), k);
  assert.equal(layerPath("/var/lib/aplspawn/images", k), `/var/lib/aplspawn/images/layers/${k}.squashfs`);
});

test("image.packages: the config takes package names and refuses anything else", () => {
  const ok = configSchema.safeParse({ image: { packages: ["openssh-server", "python3", "libc6+x"] } });
  assert.ok(ok.success);
  assert.deepEqual(ok.data.image.packages, ["openssh-server", "python3", "libc6+x"]);
  assert.equal(configSchema.parse({}).image.packages, undefined);
  assert.deepEqual(configSchema.parse({ image: { packages: [] } }).image.packages, []);
  for (const bad of ["x; reboot", "-y", "Foo", ""])
    assert.equal(configSchema.safeParse({ image: { packages: [bad] } }).success, false, bad);
});
