// An idmapped bind mount: the tree at src appears at dst with every owner k shown as base+k (the
// shared, read-only image root seen by one container in a user namespace, whose root is host uid
// base). The kernel does it (mount_setattr with MOUNT_ATTR_IDMAP); util-linux 2.38 (Debian 12)
// cannot ask it (X-mount.idmap came in 2.39), so a short Python program makes the three system
// calls: python3 is on every host that runs Ansible. Its user namespace exists only for the call.
import type { Host } from "../host/host.js";

const PROGRAM = String.raw`
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
src, dst, base, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def fail(what):
    e = ctypes.get_errno()
    sys.exit("%s: %s" % (what, os.strerror(e)))
ready_r, ready_w = os.pipe()
done_r, done_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        os._exit(1)
    os.write(ready_w, b"u")
    os.read(done_r, 1)
    os._exit(0)
if os.read(ready_r, 1) != b"u":
    sys.exit("the helper process could not make a user namespace")
for f, text in (("uid_map", "0 %d %d\n" % (base, count)), ("setgroups", "deny"), ("gid_map", "0 %d %d\n" % (base, count))):
    with open("/proc/%d/%s" % (pid, f), "w") as fh:
        fh.write(text)
ns = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
os.write(done_w, b"x")
os.waitpid(pid, 0)
syscall = libc.syscall
syscall.restype = ctypes.c_long
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
tree = syscall(428, AT_FDCWD, src.encode(), 1 | os.O_CLOEXEC)  # open_tree(OPEN_TREE_CLONE)
if tree < 0:
    fail("open_tree " + src)
attr = ctypes.create_string_buffer(struct.pack("QQQQ", 0x00100000, 0, 0, ns))  # MOUNT_ATTR_IDMAP
if syscall(442, tree, b"", AT_EMPTY_PATH, attr, 32) != 0:  # mount_setattr
    fail("mount_setattr(MOUNT_ATTR_IDMAP) on " + src)
if syscall(429, tree, b"", AT_FDCWD, dst.encode(), 4) != 0:  # move_mount(MOVE_MOUNT_F_EMPTY_PATH)
    fail("move_mount to " + dst)
`;

/** Bind-mount src at dst (an existing directory), idmapped: owner k appears as base+k, for k < count. */
export async function idmapBind(
  host: Host,
  src: string,
  dst: string,
  base: number,
  count: number,
  signal?: AbortSignal,
): Promise<void> {
  await host.exec("python3", ["-I", "-c", PROGRAM, src, dst, String(base), String(count)], { signal });
}
