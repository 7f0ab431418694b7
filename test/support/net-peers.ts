// Traffic tests without containers: what a container's traffic is to the host is a namespace of
// its own with an address in the lab's subnet, its veth a port of the lab's bridge, the bridge its
// gateway. Other machines (a LAN, the world, a docker0-like bridge's containers) are namespaces
// joined to the test namespace the same way. Traffic goes only between namespaces the test made.
import assert from "node:assert/strict";
import { TestNamespace } from "./ns.js";

/**
 * A LAN the host is on, with no peer on it: a bridge lan0 in `ns` with `cidr`, up, without IPv6 (no
 * link-local address appearing later, in the middle of a comparison of routes).
 */
export async function lanBridge(ns: TestNamespace, cidr: string): Promise<void> {
  await must(ns, "ip", ["link", "add", "lan0", "type", "bridge"]);
  await must(ns, "sysctl", ["-q", "-w", "net.ipv6.conf.lan0.disable_ipv6=1"]);
  await must(ns, "ip", ["addr", "add", cidr, "dev", "lan0"]);
  await must(ns, "ip", ["link", "set", "lan0", "up"]);
}

/** A peer namespace joined to the test namespace by a veth pair. */
export interface Peer {
  ns: TestNamespace;
  destroy(): Promise<void>;
}

/** Run a command in `ns`; fail the test when it fails. */
export async function must(ns: TestNamespace, cmd: string, args: string[]): Promise<void> {
  const r = await ns.run(cmd, args);
  assert.equal(r.exitCode, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/**
 * A namespace with `address` on its eth0, whose other end (`hostIf`) is a port of `bridge` or has
 * `hostAddress`, in `host`; its default route (or the `routes` given) goes via `gateway`. `extra`
 * addresses (/32) go on eth0 too: a container claiming an address it was not given.
 */
export async function peer(
  host: TestNamespace,
  o: {
    hostIf: string;
    address: string;
    gateway: string;
    bridge?: string;
    hostAddress?: string;
    routes?: string[];
    extra?: string[];
  },
): Promise<Peer> {
  const ns = await TestNamespace.create();
  try {
    await must(host, "ip", [
      "link",
      "add",
      o.hostIf,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      String(ns.pid),
    ]);
    // No IPv6 on the test links: their link-local addresses would come and go in the snapshots.
    await must(host, "sysctl", ["-q", "-w", `net/ipv6/conf/${o.hostIf}/disable_ipv6=1`]);
    if (o.bridge) await must(host, "ip", ["link", "set", o.hostIf, "master", o.bridge]);
    if (o.hostAddress) await must(host, "ip", ["addr", "add", o.hostAddress, "dev", o.hostIf]);
    await must(host, "ip", ["link", "set", o.hostIf, "up"]);
    await must(ns, "sysctl", ["-q", "-w", "net/ipv6/conf/eth0/disable_ipv6=1"]);
    await must(ns, "ip", ["addr", "add", o.address, "dev", "eth0"]);
    for (const a of o.extra ?? []) await must(ns, "ip", ["addr", "add", a, "dev", "eth0"]);
    await must(ns, "ip", ["link", "set", "eth0", "up"]);
    for (const to of o.routes ?? ["default"]) await must(ns, "ip", ["route", "add", to, "via", o.gateway]);
  } catch (e) {
    await ns.destroy();
    throw e;
  }
  // The veth pair goes with the peer's namespace.
  return { ns, destroy: () => ns.destroy() };
}

/**
 * The LAN: 192.168.77.2 behind the host's 192.168.77.1 (lan0), with routes to `routes` (the labs'
 * subnets) through the host, and `extra` addresses of its own.
 */
export const lanPeer = (host: TestNamespace, routes: string[], extra?: string[]) =>
  peer(host, {
    hostIf: "lan0",
    hostAddress: "192.168.77.1/24",
    address: "192.168.77.2/24",
    gateway: "192.168.77.1",
    routes,
    ...(extra ? { extra } : {}),
  });

/** Start a node program in `ns` that prints "up" once listening; the returned function stops it. */
async function server(ns: TestNamespace, what: string, program: string): Promise<() => void> {
  const child = ns.spawn(process.execPath, ["-e", program]);
  await new Promise<void>((res, rej) => {
    child.stdout?.once("data", () => res());
    child.once("exit", (code) => rej(new Error(`the server on ${what} exited ${code}`)));
  });
  return () => child.kill("SIGKILL");
}

/** A TCP server on ip:port in `ns` that answers with the address the connection came from. */
export function listen(ns: TestNamespace, ip: string, port: number): Promise<() => void> {
  return server(
    ns,
    `${ip}:${port}`,
    `require("net").createServer((s) => s.end(s.remoteAddress)).listen(${port}, ${JSON.stringify(ip)}, () => console.log("up"))`,
  );
}

/**
 * What a TCP connection from `ns` to ip:port gets: "open", "refused" (a REJECT) or "timeout" (a
 * DROP). With `seen`, an open connection reads "open from <address the server saw>".
 */
export async function connect(ns: TestNamespace, ip: string, port: number, seen = false): Promise<string> {
  const r = await ns.run(process.execPath, [
    "-e",
    `const s = require("net").connect(${port}, ${JSON.stringify(ip)});
     let got = "";
     s.setTimeout(1500, () => { console.log("timeout"); process.exit(0); });
     s.on("data", (d) => { got += d; });
     s.on("end", () => { console.log(${seen} ? "open from " + got : "open"); process.exit(0); });
     s.on("error", (e) => { console.log(e.code === "ECONNREFUSED" || e.code === "EHOSTUNREACH" ? "refused" : e.code); process.exit(0); });`,
  ]);
  return r.stdout.trim();
}

/** A UDP server on ip:port in `ns` that notes each datagram as "<source address> <text>". */
export async function udpListen(
  ns: TestNamespace,
  ip: string,
  port: number,
): Promise<{ stop(): void; waitFor(text: string): Promise<string[]> }> {
  const child = ns.spawn(process.execPath, [
    "-e",
    `const s = require("dgram").createSocket("udp4");
     s.on("message", (m, r) => console.log(r.address + " " + m));
     s.bind(${port}, ${JSON.stringify(ip)}, () => console.log("up"));`,
  ]);
  const lines: string[] = [];
  const waiting: (() => void)[] = [];
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    lines.push(...parts);
    for (const w of waiting.splice(0)) w();
  });
  await new Promise<void>((res, rej) => {
    waiting.push(() => res());
    child.once("exit", (code) => rej(new Error(`the UDP server on ${ip}:${port} exited ${code}`)));
  });
  return {
    stop: () => child.kill("SIGKILL"),
    // Every datagram noted until the one saying `text` (a marker sent after what is to be seen).
    // A marker that never comes fails the test rather than hanging it.
    async waitFor(text) {
      let late = false;
      const deadline = setTimeout(() => {
        late = true;
        for (const w of waiting.splice(0)) w();
      }, 10_000);
      while (!lines.some((l) => l.endsWith(` ${text}`))) {
        assert.ok(!late, `"${text}" never reached ${ip}:${port}; got ${JSON.stringify(lines)}`);
        await new Promise<void>((r) => waiting.push(r));
      }
      clearTimeout(deadline);
      return lines.filter((l) => l !== "up");
    },
  };
}

/** Send one UDP datagram saying `text` from `ns` to ip:port, from the address `from` when given. */
export async function udpSend(
  ns: TestNamespace,
  ip: string,
  port: number,
  text: string,
  from?: string,
): Promise<void> {
  const r = await ns.run(process.execPath, [
    "-e",
    `const s = require("dgram").createSocket("udp4");
     const send = () => s.send(${JSON.stringify(text)}, ${port}, ${JSON.stringify(ip)}, (e) => { if (e) throw e; s.close(); });
     ${from ? `s.bind(0, ${JSON.stringify(from)}, send);` : "send();"}`,
  ]);
  assert.equal(r.exitCode, 0, r.stderr);
}
