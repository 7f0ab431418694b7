// A lab of machine sets (containers.sets): a playbook through the generated inventory sees the
// sets' groups, group children and host vars; each container logs in as its set's user; names,
// ssh, stop --only and spawn --only know the sets; nothing is left after down.
import assert from "node:assert/strict";
import { assertNoResidue, labTest, ok, SETS_ONLY } from "../support/lab.js";

const PLAY = `- hosts: webservers
  become: true
  tasks:
    - name: the port of the web set
      ansible.builtin.copy:
        dest: /etc/web-port
        content: "{{ http_port }} {{ site }} {{ ansible_user }}\\n"
- hosts: prod
  become: true
  tasks:
    - name: the groups of each host of prod
      ansible.builtin.copy:
        dest: /etc/groups
        content: "{{ group_names | join(',') }} {{ ansible_user }}\\n"
`;

labTest(
  "sets: up with two sets, a playbook uses their groups, children and vars; ssh as each set's user; stop and spawn --only a set; down leaves nothing",
  { name: "sets", subnet: 58 },
  async (lab) => {
    const playbook = await lab.file("sets.yml", PLAY);
    await lab.writeConfig({
      containers: {
        ...SETS_ONLY,
        sets: [
          {
            name: "web",
            pattern: "sets-web%d",
            count: 2,
            groups: ["webservers"],
            vars: { http_port: 8080, site: "alpha" },
          },
          { name: "db", pattern: "sets-db%d", groups: ["dbservers"], user: "dbadmin" },
        ],
      },
      inventory: { children: { prod: ["webservers", "dbservers"] } },
      provision: { playbook, idempotence: true },
    });
    ok(await lab.cli(["run", "up"]), "run up with sets and a playbook");

    for (const n of ["sets-web1", "sets-web2"]) {
      const r = ok(await lab.cli(["exec", n, "--", "cat", "/etc/web-port", "/etc/groups"]), `cat on ${n}`);
      assert.equal(r.stdout.trim(), "8080 alpha test\naplspawned,prod,webservers test");
    }
    const db = ok(await lab.cli(["exec", "sets-db1", "--", "cat", "/etc/groups"]), "cat on sets-db1");
    assert.equal(db.stdout.trim(), "aplspawned,dbservers,prod dbadmin");
    const noPort = await lab.cli(["exec", "sets-db1", "--", "test", "-e", "/etc/web-port"]);
    assert.notEqual(noPort.exitCode, 0, "the web play ran on the db set");

    assert.equal(ok(await lab.cli(["names"])).stdout.trim(), "sets-web1\nsets-web2\nsets-db1");
    assert.equal(ok(await lab.cli(["names", "db"])).stdout.trim(), "sets-db1");
    assert.equal(
      ok(await lab.cli(["ssh", "sets-db1", "--", "id", "-un"]), "ssh db").stdout.trim(),
      "dbadmin",
    );
    assert.equal(ok(await lab.cli(["ssh", "sets-web1", "--", "id", "-un"]), "ssh web").stdout.trim(), "test");
    ok(await lab.cli(["status"]), "status of the sets");

    ok(await lab.cli(["run", "stop", "--only", "db"]), "stop --only db");
    const stopped = await lab.cli(["exec", "sets-db1", "--", "true"]);
    assert.notEqual(stopped.exitCode, 0, "sets-db1 still runs after stop --only db");
    ok(await lab.cli(["exec", "sets-web1", "--", "true"]), "the web set runs on");
    ok(await lab.cli(["run", "spawn", "--only", "db"]), "spawn --only db");
    assert.equal(
      ok(await lab.cli(["ssh", "sets-db1", "--", "id", "-un"]), "ssh db again").stdout.trim(),
      "dbadmin",
    );

    ok(await lab.cli(["run", "down"]), "run down");
    await assertNoResidue(lab, "after down");
  },
);
