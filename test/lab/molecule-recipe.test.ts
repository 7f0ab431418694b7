// The Molecule recipe (docs/molecule/create.yml and destroy.yml) run the way Molecule's delegated
// driver runs them (Molecule itself is not installed here): ansible-playbook on localhost with
// MOLECULE_INSTANCE_CONFIG and MOLECULE_SCENARIO_DIRECTORY set. create brings the lab up and writes
// the instance config; the container is reachable through an inventory made from it, as Molecule
// makes one, and through the lab's own inventory; destroy leaves nothing.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { assertNoResidue, labTest, ok } from "../support/lab.js";
import { CLI } from "../support/ns.js";

const RECIPE = resolve(import.meta.dirname, "../../../docs/molecule");

interface Instance {
  instance: string;
  address: string;
  user: string;
  port: number;
  identity_file: string;
  ssh_common_args: string;
}

labTest(
  "the Molecule recipe: create.yml brings the lab up and hands over its hosts, destroy.yml leaves nothing",
  { name: "mol", subnet: 73, containers: { count: 1 } },
  async (lab) => {
    const instanceConfig = join(lab.dir, "instance_config.yml");
    const env = {
      MOLECULE_INSTANCE_CONFIG: instanceConfig,
      MOLECULE_SCENARIO_DIRECTORY: lab.dir,
      MOLECULE_EPHEMERAL_DIRECTORY: lab.dir,
      ANSIBLE_NOCOLOR: "1",
      // No ssh master outlives the test (Molecule's own default keeps one 60 s).
      ANSIBLE_SSH_ARGS: "-o ControlMaster=no",
    };
    // As Molecule runs them: its inventory has localhost; the tests run as root (no sudo).
    const playbook = (file: string) =>
      lab.ns.run(
        "ansible-playbook",
        [
          "-i",
          "localhost,",
          "-e",
          `aplspawn_command='${process.execPath} ${CLI}'`,
          "-e",
          `aplspawn_config=${lab.config}`,
          "-e",
          "aplspawn_become=false",
          join(RECIPE, file),
        ],
        { env, cwd: lab.dir },
      );
    ok(await playbook("create.yml"), "create.yml");
    const instances = parse(await readFile(instanceConfig, "utf8")) as Instance[];
    assert.deepEqual(
      instances.map((i) => [i.instance, i.address, i.port]),
      [["mol-10", "10.10.73.10", 22]],
    );
    // The inventory Molecule writes from the instance config, and a command through it.
    const inv = join(lab.dir, "molecule-hosts.yml");
    const hosts = Object.fromEntries(
      instances.map((i) => [
        i.instance,
        {
          ansible_host: i.address,
          ansible_user: i.user,
          ansible_port: i.port,
          ansible_private_key_file: i.identity_file,
          ansible_ssh_common_args: i.ssh_common_args,
        },
      ]),
    );
    await writeFile(inv, JSON.stringify({ all: { hosts } }));
    const viaInstances = ok(
      await lab.ns.run("ansible", ["all", "-i", inv, "-m", "ansible.builtin.command", "-a", "hostname"], {
        env,
      }),
      "ansible through the instance config",
    );
    assert.match(viaInstances.stdout, /mol-10 \| CHANGED \| rc=0 >>\nmol-10/);
    // The lab's own inventory (what molecule.yml links as provisioner.inventory.links.hosts).
    ok(
      await lab.ns.run("ansible", ["all", "-i", lab.inventory, "-m", "ansible.builtin.ping"], { env }),
      "ansible through the lab's inventory",
    );
    ok(await playbook("destroy.yml"), "destroy.yml");
    assert.equal((await readFile(instanceConfig, "utf8")).trim(), "[]");
    await assertNoResidue(lab, "after destroy.yml");
  },
);
