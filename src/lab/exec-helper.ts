// The host side of `aplspawn exec` (see enter.ts for why it is built this way): a Python program,
// since python3 is already a host dependency (idmap-mount.ts) and the standard library has what it
// needs (setns through ctypes, memfd, SCM_RIGHTS, ptys). It is started by enter.ts with fds 0-2 the
// data (stdin, stdout, stderr), 3 control lines from aplspawn ("winsize ROWS COLS", "signal N"), 4
// status lines to it ("started UNIT", then "exit CODE" or "error CODE MESSAGE").
import { CONNECTOR_HEX } from "./exec-connector.js";

const PROGRAM = String.raw`import ctypes, errno, fcntl, json, os, select, socket, stat, struct, sys, termios

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# Everything this program will ever load is loaded above, before it enters the container's mount
# namespace; then imports are switched off, so no module can come from the container's files.
for _c in ("utf-8", "ascii"):
    "x".encode(_c).decode(_c, "replace")
sys.meta_path.clear()
sys.path_hooks.clear()
sys.path.clear()
sys.path_importer_cache.clear()
STATUS, CONTROL = 4, 3
MAX_MESSAGE = 16 << 20
BUFFER = 256 << 10


class Refused(Exception):
    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


def oserror(what):
    e = ctypes.get_errno()
    return Refused("%s: %s" % (what, os.strerror(e)))


def say(line):
    try:
        os.write(STATUS, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


# --- Entering: every namespace of the container's init but its PID namespace -------------------

NS = (("user", 0x10000000), ("mnt", 0x00020000), ("net", 0x40000000), ("ipc", 0x08000000),
      ("uts", 0x04000000), ("cgroup", 0x02000000), ("time", 0x00000080))


def enter(leader, start):
    """Join the init's namespaces but its PID namespace; return a pidfd of the init."""
    pidfd = os.pidfd_open(leader)
    # The pidfd holds the PID: the process it names is the one whose start time is checked here.
    with open("/proc/%d/stat" % leader, "rb") as f:
        st = f.read()
    if int(st[st.rindex(b")") + 2:].split()[19]) != start:
        raise Refused("the container's init is gone")
    flags, joined = 0, set()
    for name, flag in NS:
        try:
            mine = os.stat("/proc/self/ns/" + name)
        except FileNotFoundError:
            continue
        theirs = os.stat("/proc/%d/ns/%s" % (leader, name))
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            flags |= flag
            joined.add(name)
    if "mnt" not in joined:
        raise Refused("process %d is not in a mount namespace of its own" % leader)
    if libc.setns(pidfd, flags) != 0:
        raise oserror("setns into the container's namespaces")
    # Root of the container: its own root in its user namespace, else the host's root (which is
    # what the container's root is then). No supplementary group of ours goes in.
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    return pidfd


def drop_privileges():
    """No capability, now or after an exec; no core, no ptrace without CAP_SYS_PTRACE where we began."""
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise oserror("no_new_privs")
    if libc.capset(struct.pack("Ii", 0x20080522, 0), bytes(24)) != 0:
        raise oserror("dropping capabilities")
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE


# The connector: a static x86_64 program of our own, run from a sealed memfd (no host file is mapped
# in it, so nothing of the host is reachable through its /proc/PID/exe or map_files, and the memfd
# cannot be written). It forks; the child, born in the container's PID namespace (systemd accepts a
# private connection only from a peer it can see), connects to /run/systemd/private and sends the
# socket over fd 3 (four bytes: 0, or -errno with no socket); the parent waits for it.
CONNECTOR = bytes.fromhex(
    "CONNECTOR_HEX")


def connector_elf():
    base, code_at = 0x400000, 64 + 2 * 56
    size = code_at + len(CONNECTOR)
    header = struct.pack("<4sBBBB8xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 2, 0x3E, 1, base + code_at,
                         64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, r-x
    stack = struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16)  # PT_GNU_STACK, rw-
    return header + load + stack + CONNECTOR


def connect_systemd(pidfd):
    if os.uname().machine != "x86_64":
        raise Refused("exec needs an x86_64 host (its connector is x86_64 code)")
    try:
        mfd = os.memfd_create("aplspawn-connect", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | 0x10)  # MFD_EXEC
    except OSError as e:
        if e.errno != errno.EINVAL:  # before Linux 6.3
            raise
        mfd = os.memfd_create("aplspawn-connect", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    elf = connector_elf()
    if os.write(mfd, elf) != len(elf):
        raise Refused("could not write the connector")
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    try:
        fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, seals | 0x20)  # F_SEAL_EXEC
    except OSError:
        fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, seals)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            if libc.setns(pidfd, 0x20000000) == 0:  # CLONE_NEWPID: for the children
                os.dup2(theirs.fileno(), 3)
                for fd in (0, 1, 2, 4):
                    os.close(fd)
                os.closerange(5, mfd)
                os.closerange(mfd + 1, 1 << 16)
                drop_privileges()
                os.execve(mfd, ["aplspawn-connect"], {})
        finally:
            os._exit(127)
    theirs.close()
    os.close(mfd)
    ours.settimeout(25)
    try:
        msg, anc, _, _ = ours.recvmsg(4, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC)
    except socket.timeout:
        raise Refused("the connector did not answer")
    finally:
        os.waitpid(pid, 0)
        ours.close()
    fds = [fd for level, kind, data in anc if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
           for fd in struct.unpack("%di" % (len(data) // 4), data[:len(data) // 4 * 4])]
    if len(msg) != 4:
        raise Refused("the connector ended before connecting")
    err = -struct.unpack("i", msg)[0]
    if err or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise Refused("no systemd manager answers in the container (/run/systemd/private: %s)"
                      % os.strerror(err or errno.EBADMSG))
    s = socket.socket(fileno=fds[0])
    if s.family != socket.AF_UNIX or s.type != socket.SOCK_STREAM:
        s.close()
        raise Refused("the connector sent something else than a socket")
    return s


# --- A pty in the container's own devpts ---------------------------------------------------------

O_PATH = 0o10000000
DEVPTS_SUPER_MAGIC = 0x1CD1


def fs_type(fd):
    buf = ctypes.create_string_buffer(256)
    if libc.fstatfs(fd, buf) != 0:
        raise oserror("fstatfs")
    return struct.unpack_from("l", buf.raw)[0]


def openpt(rows, cols):
    d = os.open("/dev/pts", O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if fs_type(d) != DEVPTS_SUPER_MAGIC:
            raise Refused("the container's /dev/pts is not a devpts file system")
        # openat2: ptmx of that very devpts, no link, no mount on top of it.
        how = struct.pack("QQQ", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC, 0, 0x01 | 0x02 | 0x04 | 0x08)
        master = libc.syscall(437, d, b"ptmx", how, len(how))
        if master < 0:
            raise oserror("opening the container's /dev/pts/ptmx")
    finally:
        os.close(d)
    s = os.fstat(master)
    if not stat.S_ISCHR(s.st_mode) or (os.major(s.st_rdev), os.minor(s.st_rdev)) != (5, 2) or fs_type(master) != DEVPTS_SUPER_MAGIC:
        os.close(master)
        raise Refused("the container's /dev/pts/ptmx is not a pty multiplexer")
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    n = struct.unpack("I", fcntl.ioctl(master, 0x80045430, b"\0" * 4))[0]  # TIOCGPTN
    if rows and cols:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    slave = fcntl.ioctl(master, 0x5441, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)  # TIOCGPTPEER
    if isinstance(slave, bytes) or slave < 0:
        raise Refused("could not open the pty's terminal")
    return master, slave, "/dev/pts/%d" % n


# --- D-Bus: just enough of the wire format for systemd's private socket ----------------------------

ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
         "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
FIXED = {"y": "B", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q", "d": "d", "h": "I"}


class Proto(Exception):
    pass


def type_end(sig, i):
    """The end of the single complete type starting at sig[i]."""
    if i >= len(sig):
        raise Proto("signature cut short")
    c = sig[i]
    if c == "a":
        return type_end(sig, i + 1)
    if c == "(":
        j = i + 1
        while j < len(sig) and sig[j] != ")":
            j = type_end(sig, j)
        if j >= len(sig) or j == i + 1:
            raise Proto("bad struct in signature")
        return j + 1
    if c == "{":
        j = type_end(sig, type_end(sig, i + 1))
        if j >= len(sig) or sig[j] != "}":
            raise Proto("bad dict entry in signature")
        return j + 1
    if c in ALIGN and c not in ")}":
        return i + 1
    raise Proto("bad type %r in signature" % c)


def split(sig):
    out, i = [], 0
    while i < len(sig):
        j = type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


class Writer:
    def __init__(self):
        self.b = bytearray()

    def pad(self, n):
        self.b += b"\0" * (-len(self.b) % n)

    def put(self, t, v):
        c = t[0]
        self.pad(ALIGN[c])
        if c in FIXED:
            self.b += struct.pack("<" + FIXED[c], v)
        elif c == "b":
            self.b += struct.pack("<I", 1 if v else 0)
        elif c in "so":
            e = v.encode("utf-8")
            self.b += struct.pack("<I", len(e)) + e + b"\0"
        elif c == "g":
            e = v.encode("ascii")
            self.b += bytes([len(e)]) + e + b"\0"
        elif c == "v":
            self.put("g", v[0])
            self.put(v[0], v[1])
        elif c == "a":
            at = len(self.b)
            self.b += b"\0\0\0\0"
            self.pad(ALIGN[t[1]])
            start = len(self.b)
            for x in v:
                self.put(t[1:], x)
            struct.pack_into("<I", self.b, at, len(self.b) - start)
        elif c in "({":
            for m, x in zip(split(t[1:-1]), v):
                self.put(m, x)


class Reader:
    def __init__(self, data, order):
        self.d, self.p, self.o = data, 0, order

    def take(self, n):
        if self.p + n > len(self.d):
            raise Proto("message cut short")
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def get(self, t, depth=0):
        if depth > 64:
            raise Proto("nested too deep")
        c = t[0]
        self.take(-self.p % ALIGN[c])
        if c in FIXED:
            return struct.unpack(self.o + FIXED[c], self.take(struct.calcsize(FIXED[c])))[0]
        if c == "b":
            return struct.unpack(self.o + "I", self.take(4))[0] != 0
        if c in "sog":
            n = self.take(1)[0] if c == "g" else struct.unpack(self.o + "I", self.take(4))[0]
            v = self.take(n)
            if self.take(1) != b"\0":
                raise Proto("string not terminated")
            return v.decode("utf-8", "replace")
        if c == "v":
            sig = self.get("g")
            if type_end(sig, 0) != len(sig):
                raise Proto("variant of more than one type")
            return (sig, self.get(sig, depth + 1))
        if c == "a":
            n = struct.unpack(self.o + "I", self.take(4))[0]
            self.take(-self.p % ALIGN[t[1]])
            end = self.p + n
            if end > len(self.d):
                raise Proto("array past the message")
            out = []
            while self.p < end:
                out.append(self.get(t[1:], depth + 1))
            if self.p != end:
                raise Proto("array length mismatch")
            return dict(out) if t[1] == "{" else out
        if c in "({":
            return tuple(self.get(m, depth + 1) for m in split(t[1:-1]))
        raise Proto("bad type %r" % c)


class Bus:
    def __init__(self, sock):
        self.s = sock
        self.rx = bytearray()
        self.serial = 0
        self.s.settimeout(25)
        # AUTH EXTERNAL as uid 0 (the container's root), and unix fds.
        self.s.sendall(b"\0AUTH EXTERNAL 30\r\n")
        if not self.line().startswith(b"OK "):
            raise Refused("the container's systemd refused the connection")
        self.s.sendall(b"NEGOTIATE_UNIX_FD\r\n")
        if not self.line().startswith(b"AGREE_UNIX_FD"):
            raise Refused("the container's systemd does not take file descriptors")
        self.s.sendall(b"BEGIN\r\n")
        # Nothing more until systemd has read BEGIN on its own: sd-bus reads the authentication in
        # small pieces, and a message that comes in the same read as BEGIN waits for more input
        # (a short one), or fails the connection when it carries file descriptors.
        for _ in range(5000):
            if struct.unpack("i", fcntl.ioctl(self.s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] == 0:
                break
            select.select([], [], [], 0.001)
        else:
            raise Refused("the container's systemd did not read the authentication")
        self.s.setblocking(False)

    def line(self):
        while b"\r\n" not in self.rx:
            if len(self.rx) > 4096:
                raise Proto("authentication line too long")
            data = self.s.recv(4096)
            if not data:
                raise Proto("connection closed during authentication")
            self.rx += data
        i = self.rx.index(b"\r\n")
        out = bytes(self.rx[:i])
        del self.rx[:i + 2]
        return out

    def fileno(self):
        return self.s.fileno()

    def send(self, path, iface, member, sig, args, fds=()):
        self.serial += 1
        body = Writer()
        for t, a in zip(split(sig), args):
            body.put(t, a)
        fields = [(1, ("o", path)), (2, ("s", iface)), (3, ("s", member)), (6, ("s", "org.freedesktop.systemd1"))]
        if sig:
            fields.append((8, ("g", sig)))
        if fds:
            fields.append((9, ("u", len(fds))))
        h = Writer()
        h.b += struct.pack("<cBBBII", b"l", 1, 0, 1, len(body.b), self.serial)
        h.put("a(yv)", fields)
        h.pad(8)
        data = bytes(h.b + body.b)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))] if fds else []
        self.s.setblocking(True)
        try:
            sent = self.s.sendmsg([data], anc)
            if sent < len(data):
                self.s.sendall(data[sent:])
        finally:
            self.s.setblocking(False)
        return self.serial

    def receive(self):
        """Read what is there; return the complete messages as (type, fields, body bytes, order)."""
        try:
            # No ancillary buffer: a file descriptor sent to us is dropped by the kernel.
            data = self.s.recv(1 << 16)
        except BlockingIOError:
            return []
        if not data:
            raise Refused("the container's systemd closed the connection")
        self.rx += data
        out = []
        while len(self.rx) >= 16:
            order = {ord("l"): "<", ord("B"): ">"}.get(self.rx[0])
            if order is None:
                raise Proto("bad byte order")
            body_len, _, fields_len = struct.unpack(order + "III", self.rx[4:16])
            head = 16 + fields_len
            total = head + (-head % 8) + body_len
            if total > MAX_MESSAGE:
                raise Proto("message too large")
            if len(self.rx) < total:
                break
            msg = bytes(self.rx[:total])
            del self.rx[:total]
            r = Reader(msg[:head], order)
            r.p = 12
            fields = dict(r.get("a(yv)"))
            out.append((msg[1], fields, msg[head + (-head % 8):], order))
        return out


def body_of(fields, body, order):
    sig = fields.get(8, ("g", ""))[1]
    r = Reader(body, order)
    return [r.get(t) for t in split(sig)]


def unit_path(unit):
    return "/org/freedesktop/systemd1/unit/" + "".join(
        ch if ch.isascii() and ch.isalnum() and not (i == 0 and ch.isdigit()) else "_%02x" % ord(ch)
        for i, ch in enumerate(unit))


MANAGER = ("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


class Session:
    def __init__(self, bus, unit):
        self.bus, self.unit, self.path = bus, unit, unit_path(unit)
        self.code = self.status = self.result = None
        self.removed = False
        self.replies = {}

    def handle(self, messages):
        for kind, fields, body, order in messages:
            if kind in (2, 3):
                serial = fields.get(5, ("u", 0))[1]
                err = fields.get(4, ("s", ""))[1] if kind == 3 else None
                self.replies[serial] = (err, body_of(fields, body, order))
            elif kind == 4:
                path, iface, member = (fields.get(k, ("", ""))[1] for k in (1, 2, 3))
                if member == "PropertiesChanged" and path == self.path:
                    name, changed, _ = body_of(fields, body, order)
                    if name == "org.freedesktop.systemd1.Service":
                        for key, attr in (("ExecMainCode", "code"), ("ExecMainStatus", "status"), ("Result", "result")):
                            if key in changed:
                                setattr(self, attr, changed[key][1])
                elif member == "UnitRemoved" and (path, iface) == MANAGER:
                    if body_of(fields, body, order)[0] == self.unit:
                        self.removed = True

    def call(self, member, sig, args, fds=(), path=MANAGER[0], iface=MANAGER[1]):
        serial = self.bus.send(path, iface, member, sig, args, fds)
        while serial not in self.replies:
            if not select.select([self.bus], [], [], 25)[0]:
                raise Refused("the container's systemd did not answer %s" % member)
            self.handle(self.bus.receive())
        err, body = self.replies.pop(serial)
        if err is not None:
            raise Refused("the container's systemd refused %s: %s%s" % (member, err, (": " + str(body[0])) if body else ""))
        return body

    def gone(self):
        """Ask whether the unit is still there (in case a signal was missed): asking about a unit
        that is gone loads a stub of it, whose LoadState is not "loaded"."""
        (_, state), = self.call("Get", "ss", ["org.freedesktop.systemd1.Unit", "LoadState"],
                                path=self.path, iface="org.freedesktop.DBus.Properties")
        if state != "loaded":
            self.removed = True


# --- The relay ----------------------------------------------------------------------------------

def resolve(argv0, path):
    if "/" in argv0:
        return argv0 if argv0.startswith("/") else "/" + argv0
    for d in path.split(":"):
        if not d.startswith("/"):
            continue
        p = d.rstrip("/") + "/" + argv0
        try:
            s = os.stat(p)
        except OSError:
            continue
        if stat.S_ISREG(s.st_mode) and s.st_mode & 0o111:
            return p
    raise Refused("%s: command not found in the container" % argv0, 127)


def nonblock(fd):
    os.set_blocking(fd, False)


def main():
    req = json.loads(sys.argv[1])
    tty = req["tty"]
    pidfd = enter(req["leader"], req["start"])
    sock = connect_systemd(pidfd)
    os.close(pidfd)
    drop_privileges()
    env = req["env"]
    path_var = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/bin:/bin")
    argv = req["argv"]
    exe = resolve(argv[0], path_var)
    unit = "aplspawn-exec-%s.service" % os.urandom(8).hex()
    props = [
        ("Description", ("s", "aplspawn exec %s" % argv[0])),
        ("ExecStart", ("a(sasb)", [(exe, argv, False)])),
        ("Environment", ("as", env)),
        ("NoNewPrivileges", ("b", True)),
        ("SendSIGHUP", ("b", True)),
        ("IgnoreSIGPIPE", ("b", False)),
        ("CollectMode", ("s", "inactive-or-failed")),
        ("TimeoutStopUSec", ("t", 10000000)),
    ]
    if tty:
        master, slave, name = openpt(req["rows"], req["cols"])
        give = [slave]
        props += [("TTYPath", ("s", name))]
        idx = (0, 0, 0)
    else:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        give = [in_r, out_w, err_w]
        idx = (0, 1, 2)
    props += [("StandardInputFileDescriptor", ("h", idx[0])),
              ("StandardOutputFileDescriptor", ("h", idx[1])),
              ("StandardErrorFileDescriptor", ("h", idx[2]))]
    s = Session(Bus(sock), unit)
    s.call("StartTransientUnit", "ssa(sv)a(sa(sv))", [unit, "fail", props, []], fds=give)
    for fd in give:
        os.close(fd)
    say("started " + unit)

    # Sources and sinks: (from fd, to fd, buffer).
    if tty:
        to_cmd, cmd_in = bytearray(), master
        outs = {master: [1, bytearray(), False]}
    else:
        to_cmd, cmd_in = bytearray(), in_w
        outs = {out_r: [1, bytearray(), False], err_r: [2, bytearray(), False]}
    for fd in [0, 1, 2, CONTROL, cmd_in] + list(outs):
        nonblock(fd)
    in_eof = ctl_eof = False
    ctl = bytearray()
    caller_gone = False

    def pump_out(fd, o, wait):
        """Read fd into its buffer; True once at its end (or, waiting, once nothing came for 2 s)."""
        while len(o[1]) < BUFFER:
            if wait and not select.select([fd], [], [], 2)[0]:
                return True
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                if wait:
                    continue
                return False
            except OSError as e:
                if e.errno != errno.EIO:  # a pty's master once its terminal is closed
                    raise
                data = b""
            if not data:
                o[2] = True
                return True
            o[1] += data
        return False

    while not s.removed:
        want = {}
        def ask(fd, ev):
            want[fd] = want.get(fd, 0) | ev
        ask(s.bus.fileno(), select.POLLIN)
        if not in_eof and len(to_cmd) < BUFFER:
            ask(0, select.POLLIN)
        if to_cmd and cmd_in is not None:
            ask(cmd_in, select.POLLOUT)
        for fd, o in outs.items():
            if not o[2] and len(o[1]) < BUFFER:
                ask(fd, select.POLLIN)
            if o[1]:
                ask(o[0], select.POLLOUT)
        if not ctl_eof:
            ask(CONTROL, select.POLLIN)
        p = select.poll()
        for fd, ev in want.items():
            p.register(fd, ev)
        ready = dict(p.poll(5000))
        if not ready:
            s.gone()
            continue
        if s.bus.fileno() in ready:
            s.handle(s.bus.receive())
        if ready.get(0) and not in_eof:
            try:
                data = os.read(0, 1 << 16)
            except BlockingIOError:
                data = None
            if data == b"":
                in_eof = True
            elif data:
                to_cmd += data
        if cmd_in is not None and to_cmd and ready.get(cmd_in, 0) & (select.POLLOUT | select.POLLERR | select.POLLHUP):
            try:
                del to_cmd[:os.write(cmd_in, to_cmd)]
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EIO):
                    raise
                to_cmd.clear()
                in_eof = True
        if not tty and in_eof and not to_cmd and cmd_in is not None:
            os.close(cmd_in)
            cmd_in = None
        for fd, o in outs.items():
            if ready.get(fd, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR) and not o[2]:
                pump_out(fd, o, False)
            if o[1] and ready.get(o[0]):
                try:
                    del o[1][:os.write(o[0], o[1])]
                except BlockingIOError:
                    pass
                except OSError:
                    caller_gone = True
        if ready.get(CONTROL):
            data = os.read(CONTROL, 4096)
            if not data:
                ctl_eof = caller_gone = True
            ctl += data
            while b"\n" in ctl:
                line, _, rest = bytes(ctl).partition(b"\n")
                ctl[:] = rest
                w = line.split()
                if w[:1] == [b"winsize"] and tty and len(w) == 3:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", int(w[1]), int(w[2]), 0, 0))
                elif w[:1] == [b"signal"] and len(w) == 2:
                    try:
                        s.call("KillUnit", "ssi", [unit, "all", int(w[1])])
                    except Refused:
                        pass  # the unit ended meanwhile
        if caller_gone:
            # Nobody reads what the command says any more: end it, as a broken pipe would (SIGPIPE).
            try:
                s.call("StopUnit", "ss", [unit, "replace"])
            except Refused:
                pass
            say("exit 141")
            return 0

    # The unit is gone: its processes are dead and systemd closed its copies of the descriptors.
    # What they wrote is read to the end (or until nothing came for 2 s: a descriptor passed on).
    for fd, o in outs.items():
        os.set_blocking(o[0], True)
        while True:
            done = o[2] or pump_out(fd, o, True)
            try:
                while o[1]:
                    del o[1][:os.write(o[0], o[1])]
            except OSError:
                break  # nobody reads it any more; the exit code still goes
            if done:
                break
    if not s.code:
        raise Refused("the container's systemd did not say how %s ended (its result: %s)"
                      % (argv[0], s.result or "unknown"))
    say("exit %d" % (s.status if s.code == 1 else 128 + s.status))
    return 0


# No traceback: printing one reads source files, which are the container's now.
try:
    code = main()
except Refused as e:
    say("error %d %s" % (e.code, e))
    code = 1
except Exception as e:
    say("error 1 %s: %s" % (type(e).__name__, e))
    code = 1
os._exit(code)
`;

/** The helper program, its connector inserted. */
export const EXEC_HELPER = PROGRAM.replace("CONNECTOR_HEX", CONNECTOR_HEX);
