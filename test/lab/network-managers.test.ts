// The container's address does not depend on the image's network manager: it is set from the host
// side, in the container's network namespace (tasks/container/address.ts). The image here is the
// test image without systemd-networkd (its units removed: aplspawn used to enable networkd and
// refused such an image) and with ifupdown installed and networking.service enabled (Debian's own
// .deb, fetched once with apt-get download and cached). The lab comes up, ssh and Ansible work,
// host0 has its address and default route seen from the host (nsenter --net) and from inside (ssh),
// after networking.service ran; status checks the address; down leaves nothing.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { makeSquashfs, sh, TEST_CACHE } from "../support/image.js";
import { summary } from "../support/json-events.js";
import { assertNoResidue, nspawnPids, ok, withLab } from "../support/lab.js";
import { skip } from "../support/ns.js";
import { ensureTestRootSquashfs } from "../support/simplestreams.js";

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Debian's ifupdown .deb, downloaded once into the test cache. */
async function ifupdownDeb(): Promise<string> {
  const dir = join(TEST_CACHE, "debs");
  await mkdir(dir, { recursive: true });
  const have = async () => (await readdir(dir)).find((f) => /^ifupdown_.*\.deb$/.test(f));
  let deb = await have();
  if (!deb) {
    const r = await execa("apt-get", ["download", "ifupdown"], { cwd: dir, reject: false });
    deb = await have();
    if (!deb) throw new Error(`apt-get download ifupdown failed: ${r.stderr}`);
  }
  return join(dir, deb);
}

/**
 * The test image's tree without systemd-networkd's units, with ifupdown installed by dpkg (its
 * maintainer scripts enable networking.service), as a squashfs kept in the test cache.
 */
async function ensureIfupdownImage(): Promise<string> {
  const root = await ensureTestRootSquashfs();
  const deb = await ifupdownDeb();
  const final = join(TEST_CACHE, `ifupdown-no-networkd-${root.sha256.slice(0, 16)}.squashfs`);
  if (await exists(final)) return final;
  const work = await mkdtemp(join(TEST_CACHE, ".ifupdown-"));
  try {
    const tree = join(work, "root");
    await sh("unsquashfs", ["-no-progress", "-d", tree, root.path]);
    for (const d of ["usr/lib/systemd/system", "lib/systemd/system"])
      for (const f of await readdir(join(tree, d)).catch(() => [] as string[]))
        if (f.startsWith("systemd-networkd")) await rm(join(tree, d, f));
    await sh("dpkg", ["--root", tree, "-i", deb]);
    // Written by ifupdown's postinst where missing: lo only. A typical VM's stanza is added, for
    // an interface the container does not have (allow-hotplug: not raised by `ifup -a`).
    const interfaces = join(tree, "etc/network/interfaces");
    const text = await readFile(interfaces, "utf8");
    await writeFile(interfaces, `${text}\nallow-hotplug eth0\niface eth0 inet dhcp\n`);
    const img = await makeSquashfs(tree, join(work, "image.squashfs"));
    await rename(img, final).catch(async (e: NodeJS.ErrnoException) => {
      if (!(await exists(final))) throw e;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return final;
}

test("any network manager: an image without systemd-networkd, with ifupdown's networking.service, comes up with its address and route set from the host; ssh, Ansible and status work; down leaves nothing", {
  skip,
}, async () => {
  const image = await ensureIfupdownImage();
  await withLab(
    "nmgr",
    95,
    async (lab) => {
      const up = await lab.cli(["run", "up"]);
      ok(up, "run up of an image without systemd-networkd");
      const names = ["nmgr-10", "nmgr-11"];
      const ips = ["10.10.95.10", "10.10.95.11"];
      for (const [i, name] of names.entries()) {
        const ip = ips[i]!;
        // Seen from the host: the container's network namespace, through its leader.
        const pid = (await nspawnPids(join(lab.machinesDir, name))).at(0);
        assert.ok(pid, `the nspawn of ${name}`);
        const leader = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8")).trim().split(/\s+/)[0];
        const inNs = async (...args: string[]) =>
          ok(await lab.ns.run("nsenter", [`--net=/proc/${leader}/ns/net`, "ip", ...args]), args.join(" "))
            .stdout;
        assert.match(await inNs("-4", "-o", "addr", "show", "dev", "host0"), new RegExp(` inet ${ip}/26 `));
        assert.match(await inNs("-4", "route", "show", "default"), /^default via 10\.10\.95\.1 dev host0/m);

        // Seen from inside, over ssh, once networking.service has run (no `-o` in the command: the
        // CLI takes it for its own --operation, even after `--`).
        const sshOut = async (...cmd: string[]) => (await lab.cli(["ssh", name, "--", ...cmd])).stdout.trim();
        assert.equal(await sshOut("systemctl", "is-active", "networking.service"), "active");
        assert.notEqual(await sshOut("systemctl", "is-active", "systemd-networkd.service"), "active");
        assert.match(await sshOut("ip", "-4", "addr", "show", "dev", "host0"), new RegExp(` inet ${ip}/26 `));
        assert.match(
          await sshOut("ip", "-4", "route", "show", "default"),
          /^default via 10\.10\.95\.1 dev host0/m,
        );
        // What keeps NetworkManager (were a role to install it) off host0.
        assert.match(
          await sshOut("cat", "/etc/NetworkManager/conf.d/10-aplspawn-host0.conf"),
          /unmanaged-devices=interface-name:host0/,
        );
      }
      const a = await lab.ns.run("ansible", ["-i", lab.inventory, "-m", "ping", "all"], { cwd: lab.dir });
      assert.equal(a.exitCode, 0, `${a.stdout}\n${a.stderr}`);
      assert.equal(a.stdout.match(/ \| SUCCESS =>/g)?.length, 2, a.stdout);

      // status checks the address from the host side.
      const st = ok(await lab.cli(["status"]), "status");
      assert.match(st.stdout, /Checking address 10\.10\.95\.10\/26 of container nmgr-10/);

      // A second up finds everything in place, the address too.
      const again = ok(await lab.cli(["--json", "run", "up"]), "second run up");
      assert.equal(summary(again).changed, 0, "a second up changes nothing");

      ok(await lab.cli(["run", "down", "--purge"]), "run down --purge");
      await assertNoResidue(lab, "after run down --purge");
    },
    { image: { url: `file://${image}` }, containers: { count: 2 } },
  );
});
