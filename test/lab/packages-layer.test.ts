// image.packages, for real: an OCI image without sshd, pushed (skopeo) to a registry on the test's
// loopback (the test image with openssh-server purged, its apt pointed at a repository on another
// machine), comes up with sshd from the packages layer, which
// the image's own apt installed through the lab's NAT from that repository: a peer namespace (the
// LAN) serving the openssh-server .deb the host's apt downloaded. ssh and Ansible work; a second up
// changes nothing and asks the repository and the registry for nothing; down keeps the layer, cleanup deletes it (as
// down --purge does); no residue.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { sh, TEST_CACHE } from "../support/image.js";
import { summary, taskEvents } from "../support/json-events.js";
import { labTest, ok, testImage } from "../support/lab.js";
import { lanPeer } from "../support/net-peers.js";
import { startRegistry } from "../support/oci.js";

const REPO_IP = "192.168.77.2";
const REPO_PORT = 8080;
const SQUASHFS_OFFSET = String(1024 * 1024);

/** The installed version of a package in a tree's dpkg status. */
async function installedVersion(tree: string, pkg: string): Promise<string> {
  const status = await readFile(join(tree, "var/lib/dpkg/status"), "utf8");
  const stanza = status.split("\n\n").find((s) => s.startsWith(`Package: ${pkg}\n`));
  const v = stanza && /^Version: (.+)$/m.exec(stanza)?.[1];
  if (!v) throw new Error(`${pkg} is not in ${tree}'s dpkg status`);
  return v;
}

/**
 * The test image without sshd, as an OCI image layout with one tag, "test" (cached under
 * TEST_CACHE), and the apt repository its sources.list names: the openssh-server it lacked, at the
 * version it had.
 */
async function ensureNoSshd(): Promise<{ layout: string; repo: string }> {
  const { path, sha256 } = await testImage();
  const dir = join(TEST_CACHE, `no-sshd-${sha256.slice(0, 16)}`);
  const layout = join(dir, "layout");
  const repo = join(dir, "repo");
  if (existsSync(join(layout, "index.json")) && existsSync(join(repo, "Packages"))) return { layout, repo };
  await rm(dir, { recursive: true, force: true });
  await mkdir(repo, { recursive: true });
  const work = join(dir, "work");
  const bundle = join(work, "bundle");
  const tree = join(bundle, "rootfs");
  await sh("umoci", ["init", "--layout", join(work, "layout")]);
  await sh("umoci", ["new", "--image", `${join(work, "layout")}:test`]);
  await sh("umoci", ["unpack", "--image", `${join(work, "layout")}:test`, bundle]);
  await rm(tree, { recursive: true });
  await sh("unsquashfs", ["-q", "-o", SQUASHFS_OFFSET, "-d", tree, path]);
  const version = await installedVersion(tree, "openssh-server");
  // A tree this test made: running its own dpkg in it is fine.
  await sh("chroot", [tree, "dpkg", "--purge", "openssh-server"]);
  await writeFile(
    join(tree, "etc/apt/sources.list"),
    `deb [trusted=yes] http://${REPO_IP}:${REPO_PORT}/ ./\n`,
  );
  await rm(join(tree, "etc/apt/sources.list.d"), { recursive: true, force: true });
  await mkdir(join(tree, "etc/apt/sources.list.d"));
  await sh("umoci", ["repack", "--image", `${join(work, "layout")}:test`, bundle]);
  // Debian's archive, through the host's apt: the package the image lost, at its version.
  await sh("sh", ["-c", `cd '${repo}' && apt-get download -q 'openssh-server=${version}'`]);
  await writeFile(
    join(repo, "Packages"),
    await sh("sh", ["-c", `cd '${repo}' && dpkg-scanpackages -m . /dev/null`]),
  );
  await rename(join(work, "layout"), layout);
  await rm(work, { recursive: true, force: true });
  return { layout, repo };
}

/** python3's http.server in the peer, serving the repository; `requests` collects its log lines. */
async function startRepo(ns: { spawn(cmd: string, args: readonly string[]): ChildProcess }, root: string) {
  const child = ns.spawn("python3", [
    "-u",
    "-m",
    "http.server",
    "-b",
    REPO_IP,
    "-d",
    root,
    String(REPO_PORT),
  ]);
  const requests: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (l) => {
    if (/"(GET|HEAD) /.test(l)) requests.push(l);
  });
  await new Promise<void>((res, rej) => {
    createInterface({ input: child.stdout! }).once("line", () => res());
    child.once("exit", (c) => rej(new Error(`the repository server exited ${c}`)));
  });
  return {
    requests,
    stop: () => {
      child.kill("SIGKILL");
      return new Promise((r) => (child.exitCode === null ? child.once("exit", r) : r(null)));
    },
  };
}

labTest(
  "image.packages: an OCI image without sshd from a registry comes up with sshd from a layer its apt installed through the lab's NAT; a second up pulls and installs nothing; image build and inspect name the layer, down keeps it, cleanup deletes it",
  { name: "pkgs", subnet: 93, containers: { count: 1 } },
  async (lab) => {
    const { layout, repo } = await ensureNoSshd();
    const lan = await lanPeer(lab.ns, ["10.10.93.0/26"]);
    const server = await startRepo(lan.ns, repo);
    const registry = await startRegistry(lab.ns, lab.dir);
    try {
      await registry.push(layout, "test", "nosshd:test");
      // The repository is on the LAN: a private address, which the lab reaches only by allowTo.
      // The install is the image's code: without allowTo it runs under the lab's rules like any
      // container and reaches nothing there; the up fails and keeps no layer.
      const layers = join(lab.workdir, "images", "layers");
      await lab.writeConfig({
        image: { oci: `${registry.host}/nosshd:test`, insecure: true },
        containers: { count: 1 },
      });
      const held = await lab.cli(["run", "up"]);
      assert.equal(held.exitCode, 1, `${held.stdout.slice(-3000)}\n${held.stderr}`);
      assert.match(held.stderr, /image\.packages/, held.stderr);
      assert.equal(server.requests.length, 0, "the install reached the LAN without allowTo");
      assert.deepEqual(
        existsSync(layers) ? (await readdir(layers)).filter((f) => f.endsWith(".squashfs")) : [],
        [],
        "a failed install keeps no layer",
      );
      await lab.writeConfig({
        image: { oci: `${registry.host}/nosshd:test`, insecure: true },
        network: { allowTo: ["192.168.77.0/24"] },
        containers: { count: 1 },
      });
      const up = await lab.cli(["--json", "run", "up"]);
      assert.equal(
        up.exitCode,
        0,
        `${up.stdout.slice(-4000)}\n${up.stderr}\nrepo: ${server.requests.join("\n")}`,
      );
      assert.equal(summary(up).ok, true);
      assert.ok(taskEvents(up).some((e) => e.id === "image.packages" && e.state === "changed"));
      assert.ok(
        server.requests.some((r) => r.includes("openssh-server")),
        server.requests.join("\n"),
      );
      const made = (await readdir(layers)).filter((f) => f.endsWith(".squashfs"));
      assert.equal(made.length, 1, `one packages layer: ${made}`);
      // image build and image inspect name it.
      const built = ok(await lab.cli(["image", "build"]), "image build").stdout;
      assert.match(built, new RegExp(`packages layer .*${made[0]} \\(apt openssh-server`), built);
      const inspected = ok(await lab.cli(["image", "inspect"]), "image inspect").stdout;
      assert.match(inspected, new RegExp(`packages layer \\(image\\.packages\\): .*${made[0]}`), inspected);

      assert.equal(ok(await lab.cli(["ssh", "pkgs-10", "--", "hostname"]), "ssh").stdout, "pkgs-10");
      // sshd came from the layer: dpkg in the container knows it, the image did not have it.
      const dpkg = ok(await lab.cli(["ssh", "pkgs-10", "--", "dpkg-query", "-W", "openssh-server"]), "dpkg");
      assert.match(dpkg.stdout, /^openssh-server\t/);
      const a = await lab.ns.run("ansible", ["-i", lab.inventory, "-m", "ping", "all"], { cwd: lab.dir });
      assert.equal(a.exitCode, 0, `${a.stdout}\n${a.stderr}`);

      const asked = server.requests.length;
      const pulled = registry.requests.length;
      const again = ok(await lab.cli(["--json", "run", "up"]), "second run up");
      assert.equal(summary(again).changed, 0, "a second up changes nothing");
      assert.equal(server.requests.length, asked, "a second up asks the repository for nothing");
      assert.equal(registry.requests.length, pulled, "a second up asks the registry for nothing");

      const left = async () =>
        existsSync(layers) ? (await readdir(layers)).filter((f) => f.endsWith(".squashfs")) : [];
      // Plain down keeps the layer (a cache, like the image); cleanup deletes it; down --purge
      // runs the same deletion (its plan names it) and finds nothing left to do.
      ok(await lab.cli(["run", "down"]), "down");
      assert.deepEqual(await left(), made, "plain down keeps the packages layer");
      ok(await lab.cli(["run", "cleanup"]), "cleanup");
      assert.deepEqual(await left(), [], "cleanup deletes the packages layer");
      const plan = ok(await lab.cli(["run", "down", "--purge", "--list-tasks"]), "plan").stdout;
      assert.match(plan, /^image\.packages-purge/m, plan);
      ok(await lab.cli(["run", "down", "--purge"]), "down --purge");
      assert.deepEqual(await left(), [], "nothing left after down --purge");
    } finally {
      await registry.stop();
      await server.stop();
      await lan.destroy();
    }
  },
);
