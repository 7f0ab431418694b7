#!/usr/bin/env bash
# The bare-shell floor: only the essential steps to bring N containers up (overlay mount, networkd
# file, a login user with sudo and the key, systemd-nspawn --boot, wait until `sudo -n true` runs
# over ssh as that user, as aplspawn's readiness check does) and down again. Each container is
# started from a cgroup of its own, as aplspawn does (containers started from one cgroup share it
# and their systemds remove each other's unit cgroups).
# Run it inside a private network+mount namespace (bench/run.mjs does).
# Usage: floor.sh LOWER N all|serial WORKDIR   (LOWER: a root directory, or a GPT image whose first
# partition is the root filesystem: it is attached read-only and mounted first, outside the timing)
# Prints: {"n":N,"mode":"all","upMs":…,"downMs":…}
set -euo pipefail
lower=$1 n=$2 mode=$3 work=$4
br=flbr0 net=10.77 user=fluser
login=${FLOOR_LOGIN:-user} # "root": log in as root and skip sudo (what host-facts measured)
cgroot=/sys/fs/cgroup/systemd/aplfloor
[ -d /sys/fs/cgroup/systemd ] || cgroot=/sys/fs/cgroup/aplfloor
ms() { date +%s%3N; }
mkdir -p "$work"
ssh-keygen -q -t ed25519 -N '' -f "$work/key" <<<y >/dev/null 2>&1 || true
loop=""
if [ -f "$lower" ]; then
  start=$(sfdisk -J "$lower" | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][0]; print(p["start"]*512, p["size"]*512)')
  loop=$(losetup --find --show --read-only --offset "${start% *}" --sizelimit "${start#* }" "$lower")
  mkdir -p "$work/lower"
  mount -o ro "$loop" "$work/lower"
  losetup -d "$loop" # autoclear: the device goes with the mount, even if this namespace is killed
  lower=$work/lower
fi
ip link add "$br" type bridge && ip addr add "$net.0.1/16" dev "$br" && ip link set "$br" up

one_up() {
  local i=$1 name=fl$1 ip="$net.1.$1" d="$work/c$1"
  mkdir -p "$d/upper/etc/systemd/network" "$d/upper/root/.ssh" "$d/work" "$d/merged"
  printf '[Match]\nVirtualization=container\nName=host0\n[Network]\nAddress=%s/16\nGateway=%s.0.1\n' "$ip" "$net" \
    >"$d/upper/etc/systemd/network/10-host0.network"
  echo "$name" >"$d/upper/etc/hostname"
  # sudo looks up the hostname: without this line it waits for DNS to time out (20 s).
  { cat "$lower/etc/hosts"; echo "127.0.1.1 $name"; } >"$d/upper/etc/hosts"
  mkdir -p "$d/upper/etc/systemd/system/multi-user.target.wants"
  ln -sf /lib/systemd/system/systemd-networkd.service "$d/upper/etc/systemd/system/multi-user.target.wants/"
  install -m 600 "$work/key.pub" "$d/upper/root/.ssh/authorized_keys"
  for f in passwd group shadow gshadow; do cp -p "$lower/etc/$f" "$d/upper/etc/$f"; done
  echo "$user:x:1000:1000::/home/$user:/bin/bash" >>"$d/upper/etc/passwd"
  echo "$user:x:1000:" >>"$d/upper/etc/group"
  echo "$user:*:19000:0:99999:7:::" >>"$d/upper/etc/shadow"
  echo "$user:!::" >>"$d/upper/etc/gshadow"
  mkdir -p "$d/upper/etc/sudoers.d" "$d/upper/home/$user/.ssh"
  echo "%$user ALL=(ALL:ALL) NOPASSWD: ALL" >"$d/upper/etc/sudoers.d/$user"
  chmod 440 "$d/upper/etc/sudoers.d/$user"
  install -m 600 "$work/key.pub" "$d/upper/home/$user/.ssh/authorized_keys"
  chown -R 1000:1000 "$d/upper/home/$user"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/merged"
  mkdir -p "$cgroot/$name"
  (
    echo "$BASHPID" >"$cgroot/$name/cgroup.procs"
    exec systemd-nspawn --quiet --boot --register=no --keep-unit -M "$name" -D "$d/merged" \
      --network-bridge="$br" >"$d/log" 2>&1 </dev/null
  ) &
  echo $! >"$d/pid"
  local who=$user@$ip cmd=(sudo -n true)
  [ "$login" = root ] && who=root@$ip cmd=(true)
  local deadline=$(($(ms) + 300000))
  # Port 22 first, by bash's own connect (no process per attempt); then ssh, given time to finish
  # its handshake: 50 booting containers on two cores answer slowly, and ssh attempts cut off
  # after 1 s while they poll every 50 ms kept some containers from ever answering (300 s).
  until { exec 3<>"/dev/tcp/$ip/22"; } 2>/dev/null; do
    if [ "$(ms)" -gt "$deadline" ]; then echo "floor: $name port 22 not open within 300 s" >&2; return 1; fi
    sleep "${FLOOR_POLL:-0.1}"
  done
  exec 3<&-
  until ssh -i "$work/key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR -o ConnectTimeout=10 "$who" "${cmd[@]}" 2>"$d/ssh.err"; do
    if [ "$(ms)" -gt "$deadline" ]; then
      echo "floor: $name did not answer within 300 s; last ssh error: $(tail -2 "$d/ssh.err")" >&2
      local leader
      leader=$(cat /proc/"$(cat "$d/pid")"/task/*/children 2>/dev/null | head -1 | tr -d ' ')
      echo "floor: $name: failed units: $(timeout 5 nsenter -t "$leader" -a systemctl --failed --no-legend 2>&1 | tr '\n' ' ' || true); log tail:" >&2
      tail -5 "$d/log" >&2
      return 1
    fi
    sleep 0.25
  done
}

one_down() {
  local d="$work/c$1" pid
  pid=$(cat "$d/pid")
  kill -TERM "$pid"
  local deadline=$(($(ms) + 60000)) k=0
  while kill -0 "$pid" 2>/dev/null; do
    # An init still starting its units can miss the poweroff request: ask again every 2 s (as
    # aplspawn does; one request once left a container running for the whole 60 s).
    k=$((k + 1)); [ $((k % 100)) = 0 ] && kill -TERM "$pid" 2>/dev/null
    # The container's init first: killing nspawn alone would leave it running, reparented.
    if [ "$(ms)" -gt "$deadline" ]; then kill -KILL $(cat "/proc/$pid/task/$pid/children" 2>/dev/null) "$pid" 2>/dev/null; fi
    sleep 0.02
  done
  umount "$d/merged"
  find "$cgroot/fl$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

failed=0
t0=$(ms)
if [ "$mode" = serial ]; then
  for i in $(seq 1 "$n"); do one_up "$i" || failed=1; done
else
  pids=()
  for i in $(seq 1 "$n"); do
    one_up "$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
fi
t1=$(ms)
for i in $(seq 1 "$n"); do [ -f "$work/c$i/pid" ] && one_down "$i" & done
wait
# Teardown ends when the bridge and the lower layer are gone too (as aplspawn's run down does).
ip link del "$br"
if [ -n "$loop" ]; then umount "$work/lower"; fi
t2=$(ms)
rmdir "$cgroot" 2>/dev/null || true
rm -rf "$work"
[ "$failed" = 0 ] || exit 1
printf '{"n":%s,"mode":"%s","upMs":%s,"downMs":%s}\n' "$n" "$mode" $((t1 - t0)) $((t2 - t1))
