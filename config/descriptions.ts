// What each config key means, by its dotted path ("[]" for a list's items): the descriptions of
// the JSON Schema `aplspawn schema` prints (and editors show). A set's image keys are described as
// the top-level image's. test/cli/schema.test.ts checks that every key of the schema has one.

export const KEY_DESCRIPTIONS: Record<string, string> = {
  lab: "The lab's name: its state lives in <workdir>/<lab>.",
  workdir: "State, keys, layers and the image store (<workdir>/images): a directory of its own.",
  network: "The lab's bridge, subnet and firewall rules.",
  "network.bridge":
    "Bridge name (at most 15 characters, not a device's such as eth0); an existing bridge is used and never deleted.",
  "network.address": "The bridge's address and the lab's subnet, e.g. 10.10.12.1/26 (/8 to /30).",
  "network.chain":
    "The iptables chain aplspawn owns (it also owns <chain>-IN, <chain>-OUT and <chain>-DNAT); not a built-in chain.",
  "network.nat": "Masquerade the subnet's traffic leaving through other interfaces.",
  "network.mtu":
    "The MTU of the containers' links (host0), when not 1500; a lab across hosts has 1450 by default (the VXLAN's 50 bytes less).",
  "network.hostPorts":
    "Ports on the host the containers may reach, e.g. tcp/3142; all else to the host is rejected.",
  "network.allowMetadata": "Let the containers reach link-local 169.254.0.0/16 (cloud metadata services).",
  "network.allowFrom":
    "Subnets that may open connections into the lab from the host's other networks (never from another lab).",
  "network.allowTo":
    "Private or special subnets beyond the host the containers may reach (e.g. the LAN); by default only public addresses (never another lab).",
  "network.forwards":
    "Ports of the host forwarded (DNAT) to a container's port, for traffic from other networks.",
  "network.forwards[].hostPort": "The host's port.",
  "network.forwards[].container": "The container's name.",
  "network.forwards[].port": "The container's port.",
  "network.forwards[].proto": "tcp or udp.",
  image: "The OS disk image the containers run on (a set's own image has the same keys).",
  "image.url": "http://, https:// or file:// URL of the image; a file URL is used in place.",
  "image.oci":
    "An OCI image reference (REGISTRY/NAME:TAG or NAME@sha256:DIGEST), pulled with skopeo (credentials from the containers auth file) and flattened into the image store; used instead of url.",
  "image.server":
    "An Incus image server (simplestreams, e.g. https://images.linuxcontainers.org): the root squashfs of image.alias for this host's architecture is downloaded, verified by the index's SHA-256 and made the lab's layer; used instead of url.",
  "image.alias":
    "The image's alias on image.server, as `incus image list images:` names it (e.g. debian/12).",
  "image.sha256": "The image's expected SHA-256.",
  "image.checksums": "URL of a SHA256SUMS file holding the image's line.",
  "image.checksumsKeyring": "A keyring the checksums' detached signature (<checksums>.gpg) must verify with.",
  "image.insecure":
    "Accept a download that nothing verifies; for image.oci, a registry over plain http or with a certificate nothing vouches for; for image.server, an index over plain http.",
  "image.maxSize": "Bytes: a larger image is refused.",
  "image.build": "Build the image with debootstrap when its file:// URL does not exist.",
  "image.build.suite": "The Debian suite given to debootstrap.",
  "image.build.mirror": "The Debian mirror.",
  "image.build.packages": "Packages installed besides debootstrap's minbase.",
  "image.build.keyring": "The keyring the mirror's Release file must be signed with.",
  "image.packages":
    "Packages the lab needs in the image (e.g. [openssh-server, python3, sudo]), installed once by the image's package manager (apt, dnf, zypper, pacman) into a cached read-only layer under every container. Unset: a default set when the image lacks sshd or python3; [] never.",
  "image.loopDevice": "Pin a loop device (e.g. /dev/loop6); by default a free one is found.",
  containers: "The lab's containers.",
  "containers.count": "How many containers (not with sets).",
  "containers.prefix": "Names are prefix + the last octet of the IP (not with sets).",
  "containers.sets": "Sets of containers alike, instead of count and prefix.",
  "containers.sets[].name": "The set's name, which --only and `names` take too.",
  "containers.sets[].pattern":
    'Its containers\' names: %d is the 1-based index in the set (default "<name>%d").',
  "containers.sets[].count": "How many containers the set has.",
  "containers.sets[].groups": "Ansible groups of its containers, besides inventory.group.",
  "containers.sets[].vars": "Host variables of each of its containers (any JSON value; not ansible_*).",
  "containers.sets[].init": "Default containers.init.",
  "containers.sets[].user": "Default containers.user.",
  "containers.sets[].group": "Default containers.group.",
  "containers.sets[].image":
    "The set's own image, from one source: url, oci, or server with alias; default: the top-level image.",
  "containers.ipRange": "First and last address of the containers, inside the bridge's subnet.",
  "containers.machinesDir": "Where the containers' merged roots live (<machinesDir>/<name>).",
  "containers.init": "boot: systemd boots the container; script: a startup script is the leader.",
  "containers.user": "The user made in each container (sudo, the lab key).",
  "containers.group": "That user's group.",
  "containers.sshKey": "Private key (its .pub beside it); generated in the lab directory when absent.",
  "containers.concurrency": "Containers started at once.",
  "containers.readyTimeout": "Seconds to wait for a container's sshd.",
  "containers.privateUsers": "Run each container in a user namespace of its own.",
  "containers.boot":
    "lab: skip what a test target does not need on the way to sshd (console getty, journal flush to disk, host key types sshd does not serve); full: boot the image as it is.",
  "containers.consoleLogMax": "Bytes of console output a container's log keeps per start (default 8 MiB).",
  "containers.binds":
    "Host paths bound into every container: [{host, container, readOnly}] (read-only by default).",
  "containers.binds[].host":
    "An existing directory or file of root's or the lab owner's; no link, no system or aplspawn directory.",
  "containers.binds[].container": "Where it appears in the container (absolute).",
  "containers.binds[].readOnly": "Bind read-only (default true).",
  "containers.memory": 'Memory limit of each container\'s cgroup, e.g. "512M" (K, M, G, T: powers of 1024).',
  "containers.cpus": "CPUs each container may use, e.g. 1.5 (its cgroup's CPU quota).",
  "containers.diskMax":
    "Size of each container's own file system, which holds what it writes (its upper layer), e.g. \"10G\" (default; at least 64M): the most it can take of the host's disk.",
  "containers.sets[].binds": "Host paths bound into its containers, besides containers.binds.",
  "containers.sets[].memory": "Default containers.memory.",
  "containers.sets[].cpus": "Default containers.cpus.",
  "containers.sets[].diskMax": "Default containers.diskMax.",
  "containers.sets[].hosts":
    "With cluster: the Ansible group whose hosts hold this set's containers (default: cluster.group).",
  cluster:
    "A lab across hosts: its containers spread over the hosts of an Ansible group, each host running its share with aplspawn, their bridges joined into one network.",
  "cluster.inventory": "The Ansible inventory of the hosts (relative to the working directory).",
  "cluster.group": "The inventory's group of the hosts that hold the lab (default aplspawn_hosts).",
  "cluster.overlay":
    "vxlan: a VXLAN between the hosts' bridges, unicast to each peer (UDP 4789; lab MTU 1450 by default); routes: no tunnel, each host routes the other hosts' lab addresses to them and answers ARP for them, for hosts on one L2 whose network lets the containers' source addresses pass (lab MTU 1500 by default).",
  inventory: "The Ansible inventory of the lab.",
  "inventory.file": "Where `run up` and `inventory` write it.",
  "inventory.format": "ini or yaml.",
  "inventory.group": "The Ansible group of every container.",
  "inventory.children": "Groups of groups, e.g. {prod: [webservers, dbservers]}.",
  "inventory.ping": "Finish `run up` with `ansible -m ping` when ansible is installed.",
  "inventory.templates":
    "Let host variables hold Ansible templating ({{ … }}, {% … %}), which Ansible evaluates on the controller, where a lookup('pipe', …) runs a command; refused unless true.",
  provision: "A playbook run against the lab at the end of `run up` (and by `run provision`).",
  "provision.playbook":
    "The playbook, relative to the working directory; it must pass ansible-playbook --syntax-check.",
  "provision.args": "More arguments for ansible-playbook (-e k=v, --tags, -v, …).",
  "provision.idempotence": "Run it twice; the second run must change nothing.",
  "provision.prepare": "`aplspawn test`: a playbook run once before provision.playbook (Molecule's prepare).",
  "provision.verify": "`aplspawn test`: a playbook of asserts run after converge (Molecule's verify).",
};

/** The description of a key path; a set's image and bind keys are the top-level ones'. */
export const describeKey = (path: string): string | undefined =>
  KEY_DESCRIPTIONS[path] ??
  (path.startsWith("containers.sets[].image.") || path.startsWith("containers.sets[].binds[].")
    ? KEY_DESCRIPTIONS[path.slice("containers.sets[].".length).replace(/^binds/, "containers.binds")]
    : undefined);
