// Small programs the real test of a lab across hosts (cluster.test.ts) runs where a shell has no
// tool for it: in the containers (through Ansible's script module) and on the simulated hosts
// (their own python3). Kept as text: the test writes them into its temporary directory.

/** The Internet checksum (RFC 1071), for both programs' hand-made headers. */
const CSUM_PY = `def csum(b):
    if len(b) % 2:
        b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
`;

/**
 * In a container, as root, for each lab address given: a TCP connection to its sshd, and an ICMP
 * echo the size of the container's link MTU with "don't fragment" set, whose reply must come back.
 * Prints one line per address; exits 1 when any failed.
 */
export const PROBE_PY = `#!/usr/bin/python3
import os, select, socket, struct, sys, time

${CSUM_PY}
mtu = int(open("/sys/class/net/host0/mtu").read())
ident = os.getpid() & 0xFFFF
bad = 0
for seq, ip in enumerate(sys.argv[1:], 1):
    try:
        socket.create_connection((ip, 22), 5).close()
        tcp = "tcp ok"
    except OSError as e:
        tcp, bad = "tcp FAILED %s" % e, bad + 1
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
    payload = b"x" * (mtu - 28)
    got, why = False, "no reply"
    for attempt in range(3):
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, csum(head + payload), ident, seq) + payload
        try:
            s.sendto(pkt, (ip, 0))
        except OSError as e:
            why = "send: %s" % e
            break
        end = time.time() + 2
        while not got and time.time() < end:
            if not select.select([s], [], [], max(0, end - time.time()))[0]:
                break
            data, (src, _) = s.recvfrom(65535)
            hl = (data[0] & 15) * 4
            t, _, _, i, q = struct.unpack("!BBHHH", data[hl:hl + 8])
            if src == ip and t == 0 and i == ident and q == seq and len(data) - hl - 8 == len(payload):
                got = True
            elif t == 3:
                why = "ICMP unreachable (type 3 code %d) from %s" % (data[hl + 1], src)
        if got:
            break
    s.close()
    icmp = "df %d ok" % mtu if got else "df %d FAILED %s" % (mtu, why)
    bad += 0 if got else 1
    print("%s %s, %s" % (ip, tcp, icmp))
sys.exit(1 if bad else 0)
`;

/**
 * On a host or the control node: `listen PORT SECONDS` prints each UDP payload received;
 * `spoof SRC DST PORT TEXT` sends a UDP datagram with any IPv4 source (a raw socket);
 * `frame SRC DST MAC PORT TEXT [LINK]` sends that datagram as an Ethernet frame to MAC straight out
 * of LINK (default host0; a packet socket: no netfilter of the sender, so no NAT rewrites its source);
 * `vxlan HOST VNI MAC IP PORT TEXT` sends a VXLAN packet of that VNI to HOST whose inner frame is a
 * UDP datagram to IP (at MAC) from 10.10.44.50, as anyone on the hosts' network could.
 */
export const TOOL_PY = `import fcntl, socket, struct, sys, time

${CSUM_PY}
def ipv4_udp(src, dst, port, text):
    data = text.encode()
    udp = struct.pack("!HHHH", 40000, port, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + udp

cmd = sys.argv[1]
if cmd == "listen":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    end = time.time() + float(sys.argv[3])
    print("listening", flush=True)
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            data, (src, _) = s.recvfrom(65535)
            print("got %s from %s" % (data.decode(errors="replace"), src), flush=True)
        except socket.timeout:
            pass
elif cmd == "spoof":
    src, dst, port, text = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _ in range(3):
        s.sendto(ipv4_udp(src, dst, port, text), (dst, 0))
        time.sleep(0.2)
elif cmd == "frame":
    src, dst, mac, port, text = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    link = sys.argv[7] if len(sys.argv) > 7 else "host0"
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((link, 0))
    # The link's own MAC by SIOCGIFHWADDR: /sys may be another network namespace's.
    own = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("256s", link.encode()[:15]))[18:24]
    head = bytes.fromhex(mac.replace(":", "")) + own + b"\\x08\\x00"
    for _ in range(3):
        s.send(head + ipv4_udp(src, dst, port, text))
        time.sleep(0.2)
elif cmd == "vxlan":
    host, vni, mac, ip, port, text = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
    frame = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000003232") + b"\\x08\\x00"
    packet = struct.pack("!II", 0x08000000, vni << 8) + frame + ipv4_udp("10.10.44.50", ip, port, text)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(3):
        s.sendto(packet, (host, 4789))
        time.sleep(0.2)
`;
