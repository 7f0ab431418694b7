// provision: the config's playbook runs against the lab at the end of `run up` (and alone with
// `run provision`), its output under the task; with idempotence a second run must change nothing;
// a playbook that fails, or is not idempotent, fails the command and leaves the lab up.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { changedTasks, failedTasks } from "../../tasks/container/provision.js";
import { assertNoResidue, type Lab, ok, playbook, withLab } from "../support/lab.js";
import { skip } from "../support/ns.js";

test("the second run's changes are read from its output: tasks by host, and the recap's counts", () => {
  const out = [
    "TASK [Gathering Facts] *****",
    "ok: [a-10]",
    "TASK [always changes] *****",
    "changed: [a-10]",
    "changed: [a-11]",
    "PLAY RECAP *****",
    "a-10                       : ok=2    changed=1    unreachable=0    failed=0",
    "a-11                       : ok=2    changed=1    unreachable=0    failed=0",
  ].join("\n");
  assert.deepEqual(changedTasks(out), {
    tasks: ["always changes on a-10", "always changes on a-11"],
    changed: 2,
    recap: true,
  });
  assert.deepEqual(changedTasks("PLAY RECAP\nh : ok=3 changed=0 unreachable=0 failed=0\n"), {
    tasks: [],
    changed: 0,
    recap: true,
  });
  // Output of another stdout callback (minimal's) has no recap: nothing is read from it.
  assert.equal(changedTasks("a-10 | CHANGED | rc=0 >>\nThu Dec  3\n").recap, false);
});

test("what failed is read from a run's output: the task and host, and the result's msg", () => {
  const out = [
    "TASK [motd says hello] *****",
    'fatal: [a-10]: FAILED! => {"changed": false, "msg": "Assertion failed"}',
    "fatal: [a-11]: FAILED! => {",
    '    "assertion": "x == 1",',
    '    "msg": "Assertion failed"',
    "}",
    "TASK [loop] *****",
    'failed: [a-12] (item=1) => {"ansible_loop_var": "item", "msg": "boom"}',
    'fatal: [a-13]: UNREACHABLE! => {"changed": false, "msg": "ssh: no route", "unreachable": true}',
  ].join("\n");
  assert.deepEqual(failedTasks(out), [
    "TASK [motd says hello] failed on a-10: Assertion failed",
    "TASK [motd says hello] failed on a-11: Assertion failed",
    "TASK [loop] failed on a-12: boom",
    "TASK [loop] unreachable on a-13: ssh: no route",
  ]);
});

// A callback any config may load (it needs no enabling): it leaves a file when it is loaded.
const markerCallback = (marker: string) => `from ansible.plugins.callback import CallbackBase
class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "marker"
    CALLBACK_NEEDS_ENABLED = False
    def v2_playbook_on_start(self, playbook):
        open(${JSON.stringify(marker)}, "w").close()
`;

// A stdout callback of the user's, in the shape of ansible.posix.json: one JSON document at the end.
const JSON_CALLBACK = `from ansible.plugins.callback import CallbackBase
import json
class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "userjson"
    def __init__(self):
        super().__init__()
        self.results = []
    def v2_runner_on_ok(self, result):
        self.results.append({"host": result._host.get_name(), "changed": result._result.get("changed", False)})
    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps({"plays": self.results}))
`;

// What a test target does with systemd, on either boot profile: facts, a service with a handler,
// name resolution (nss), journalctl, and a user unit through systemctl --user (a linger).
const SERVICE_TASKS = `    - name: facts
      ansible.builtin.assert:
        that: ["ansible_facts.distribution == 'Debian'", "ansible_facts.user_id == 'root'"]
    - name: a service
      ansible.builtin.copy:
        dest: /etc/systemd/system/aplspawn-probe.service
        content: "[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n"
      notify: restart probe
    - name: the service runs
      ansible.builtin.systemd:
        name: aplspawn-probe
        state: started
        enabled: true
        daemon_reload: true
    - name: name resolution (nss)
      ansible.builtin.command: getent hosts {{ inventory_hostname }}
      changed_when: false
    - name: the journal answers for the service
      ansible.builtin.command: journalctl -u aplspawn-probe --no-pager
      register: j
      changed_when: false
      failed_when: j.rc != 0 or 'aplspawn-probe' not in j.stdout
    # systemctl --user: a unit of the lab user's own manager. Lingering starts that manager at boot
    # and keeps it after the last logout, as on a host (logind and user@.service run with both
    # profiles); the module finds the manager's bus under /run/user/UID.
    - name: the lab user lingers
      ansible.builtin.command: loginctl enable-linger {{ ansible_user }}
      args:
        creates: /var/lib/systemd/linger/{{ ansible_user }}
    - name: a user unit
      become_user: "{{ ansible_user }}"
      block:
        - name: its directory
          ansible.builtin.file:
            path: ~/.config/systemd/user
            state: directory
            mode: "0755"
        - name: its file
          ansible.builtin.copy:
            dest: ~/.config/systemd/user/aplspawn-user-probe.service
            content: "[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=default.target\\n"
            mode: "0644"
        - name: it runs, enabled, under the user's manager
          ansible.builtin.systemd:
            name: aplspawn-user-probe
            scope: user
            state: started
            enabled: true
            daemon_reload: true
        - name: the user's manager says so
          ansible.builtin.shell: XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user is-active aplspawn-user-probe
          register: u
          changed_when: false
          failed_when: u.stdout != 'active'
`;
const SERVICE_HANDLERS = `  handlers:
    - name: restart probe
      ansible.builtin.systemd:
        name: aplspawn-probe
        state: restarted
`;

// Consoles: the lab profile's drop-ins are there with lab and gone with full (one upper layer).
async function assertConsoleGetty(lab: Lab, name: string, boot: "lab" | "full"): Promise<void> {
  const r = ok(
    await lab.cli([
      "exec",
      name,
      "--",
      "systemctl",
      "show",
      "-p",
      "ConditionResult",
      "--value",
      "console-getty",
    ]),
    "systemctl show",
  );
  assert.equal(r.stdout.trim(), boot === "lab" ? "no" : "yes", `console-getty's condition, boot ${boot}`);
}

// A playbook that does nothing but start (no facts, one ping): where what is checked is what
// aplspawn does around Ansible (which ansible.cfg it reads, how it reads a second run), not what
// the playbook does in the containers.
const quick = (task = "    - ansible.builtin.ping:\n") => playbook(task, { facts: false });

test(
  "provision: up runs the playbook (facts, become, vars, and on the lab boot profile a service with a handler, name resolution, journalctl and a user unit through systemctl --user), idempotence is checked; a failing or changing playbook fails the command and the lab stays up",
  { skip },
  () =>
    withLab("prv", 53, async (lab) => {
      const good = await lab.file(
        "good.yml",
        `${playbook(`    - name: a file naming the host and its release
      ansible.builtin.copy:
        dest: /etc/provisioned
        content: "{{ inventory_hostname }} {{ ansible_distribution_release }} {{ greeting }}\\n"
    - name: who Ansible runs as on the controller
      ansible.builtin.copy:
        dest: /etc/controller-uid
        content: "{{ lookup('pipe', 'id -u') }}\\n"
${SERVICE_TASKS}`)}${SERVICE_HANDLERS}`,
      );
      await lab.writeConfig({
        containers: { count: 2 },
        provision: { playbook: good, args: ["-e", "greeting=hello"], idempotence: true },
      });
      const up = ok(await lab.cli(["run", "up"]), "run up with a playbook");
      assert.match(up.stdout, /Running ansible-playbook .*good\.yml twice \(idempotence\)/);
      assert.match(up.stdout, /TASK \[a file naming the host and its release\]/);
      assert.match(up.stdout, /TASK \[it runs, enabled, under the user's manager\]/);
      assert.match(up.stdout, /idempotence: .*changed=0/);
      for (const n of ["prv-10", "prv-11"]) {
        const r = ok(await lab.cli(["exec", n, "--", "cat", "/etc/provisioned"]), "cat");
        assert.equal(r.stdout.trim(), `${n} bookworm hello`);
      }
      await assertConsoleGetty(lab, "prv-10", "lab");
      // A lab without owner (root ran it, no sudo): Ansible ran as aplspawn's unprivileged account,
      // the ping too, never as root on the controller.
      const account = (await execa("id", ["-u", "aplspawn"])).stdout.trim();
      assert.match(up.stdout, /Checking the lab with ansible .* as aplspawn/);
      assert.match(up.stdout, /Running ansible-playbook .* as aplspawn/);
      const uid = ok(await lab.cli(["exec", "prv-10", "--", "cat", "/etc/controller-uid"]), "cat uid");
      assert.equal(uid.stdout.trim(), account, "the controller's uid under Ansible");
      assert.notEqual(uid.stdout.trim(), "0");

      // An ansible.cfg in the current directory that another user could have written is not read
      // (a config loads plugins: their code, run by aplspawn); one of root's is.
      // Where the callback, run as Ansible's account, may leave its file.
      const markers = join(lab.dir, "markers");
      await mkdir(markers);
      await chmod(markers, 0o1777);
      const marker = join(markers, "cfg-was-read");
      // Not callback_plugins: Ansible loads that directory beside a playbook whatever the config says.
      const plugins = join(lab.dir, "cfg-plugins");
      await mkdir(plugins, { recursive: true });
      await writeFile(join(plugins, "marker.py"), markerCallback(marker));
      const cfg = await lab.file("ansible.cfg", `[defaults]\ncallback_plugins = ${plugins}\n`);
      await chown(cfg, 61234, 61234);
      // The callback is loaded when the playbook starts: any playbook shows it, once.
      await lab.writeConfig({
        containers: { count: 2 },
        provision: { playbook: await lab.file("ping.yml", quick()) },
      });
      const theirs = ok(await lab.cli(["run", "provision"]), "provision beside another user's ansible.cfg");
      assert.match(theirs.stdout, /Ansible does not read .*ansible\.cfg: it belongs to uid 61234/);
      assert.equal(existsSync(marker), false, "another user's ansible.cfg was read");
      await chown(cfg, 0, 0);
      await chmod(cfg, 0o666);
      ok(await lab.cli(["run", "provision"]), "provision beside a world-writable ansible.cfg");
      assert.equal(existsSync(marker), false, "a world-writable ansible.cfg was read");
      await chmod(cfg, 0o644);
      ok(await lab.cli(["run", "provision"]), "provision beside root's ansible.cfg");
      assert.equal(existsSync(marker), true, "root's own ansible.cfg was not read");
      await rm(cfg);

      // A task that changes every time: the second run names it, the command fails, the lab stays.
      const changing = await lab.file(
        "changing.yml",
        quick("    - name: always changes\n      ansible.builtin.command: date\n"),
      );
      await lab.writeConfig({
        containers: { count: 2 },
        provision: { playbook: changing, idempotence: true },
      });
      const notIdem = await lab.cli(["run", "provision"]);
      assert.equal(notIdem.exitCode, 1, notIdem.stdout);
      assert.match(
        notIdem.stderr,
        /is not idempotent: its second run changed 2: always changes on prv-1[01]; always changes on prv-1[01]/,
      );
      ok(await lab.cli(["status"]), "status after the non-idempotent playbook");

      // Whatever stdout callback the user's Ansible is set to (an ansible.cfg in the current
      // directory, the environment, a JSON callback of their own), the second run is read the same.
      await writeFile(join(plugins, "userjson.py"), JSON_CALLBACK);
      for (const [what, cfgText, env] of [
        ["stdout_callback = minimal in ./ansible.cfg", "[defaults]\nstdout_callback = minimal\n", {}],
        ["ANSIBLE_STDOUT_CALLBACK=minimal", undefined, { ANSIBLE_STDOUT_CALLBACK: "minimal" }],
        [
          "a JSON stdout callback",
          `[defaults]\nstdout_callback = userjson\ncallback_plugins = ${plugins}\n`,
          {},
        ],
      ] as const) {
        if (cfgText) await writeFile(cfg, cfgText);
        const r = await lab.cli(["run", "provision"], env);
        await rm(cfg, { force: true });
        assert.equal(r.exitCode, 1, `${what}: a changing playbook passed idempotence\n${r.stdout}`);
        assert.match(r.stderr, /is not idempotent: its second run changed 2/, what);
      }

      // A playbook that fails: the command fails, the lab stays up.
      const failing = await lab.file(
        "failing.yml",
        quick("    - name: boom\n      ansible.builtin.fail:\n        msg: boom\n"),
      );
      await lab.writeConfig({
        containers: { count: 2 },
        provision: { playbook: failing },
      });
      const failed = await lab.cli(["run", "up"]);
      assert.equal(failed.exitCode, 1, failed.stdout);
      assert.match(failed.stderr, /failing\.yml failed \(exit code 2\); the lab stays up/);
      ok(await lab.cli(["status"]), "status after the failing playbook");

      ok(await lab.cli(["run", "down"]), "run down");
      await assertNoResidue(lab, "after down");
    }),
);

test(
  "provision on the full boot profile (the image boots as it is): facts, become, a service with a handler, name resolution, journalctl and a user unit through systemctl --user pass with idempotence",
  { skip },
  () =>
    withLab("prb", 57, async (lab) => {
      const book = await lab.file("service.yml", `${playbook(SERVICE_TASKS)}${SERVICE_HANDLERS}`);
      await lab.writeConfig({
        containers: { count: 1, boot: "full" },
        provision: { playbook: book, idempotence: true },
      });
      const up = ok(await lab.cli(["run", "up"]), "run up, boot full");
      assert.match(up.stdout, /idempotence: .*changed=0/, "boot full");
      await assertConsoleGetty(lab, "prb-10", "full");
      ok(await lab.cli(["run", "down"]), "run down, boot full");
    }),
);
