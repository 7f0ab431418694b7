#!/usr/bin/env bash
# The bare-shell floor: only the essential steps to bring N containers up (overlay mount, networkd
# file, authorized key, systemd-nspawn --boot, wait until a command runs over ssh) and down again.
# Run it inside a private network+mount namespace (bench/run.mjs does).
# Usage: floor.sh LOWER N all|serial WORKDIR   (LOWER: a root directory, or a GPT image whose first
# partition is the root filesystem: it is attached read-only and mounted first, outside the timing)
# Prints: {"n":N,"mode":"all","upMs":…,"downMs":…}
set -euo pipefail
lower=$1 n=$2 mode=$3 work=$4
br=flbr0 net=10.77
ms() { date +%s%3N; }
mkdir -p "$work"
ssh-keygen -q -t ed25519 -N '' -f "$work/key" <<<y >/dev/null 2>&1 || true
loop=""
if [ -f "$lower" ]; then
  start=$(sfdisk -J "$lower" | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"][0]; print(p["start"]*512, p["size"]*512)')
  loop=$(losetup --find --show --read-only --offset "${start% *}" --sizelimit "${start#* }" "$lower")
  mkdir -p "$work/lower"
  mount -o ro "$loop" "$work/lower"
  lower=$work/lower
fi
ip link add "$br" type bridge && ip addr add "$net.0.1/16" dev "$br" && ip link set "$br" up

one_up() {
  local i=$1 name=fl$1 ip="$net.1.$1" d="$work/c$1"
  mkdir -p "$d/upper/etc/systemd/network" "$d/upper/root/.ssh" "$d/work" "$d/merged"
  printf '[Match]\nVirtualization=container\nName=host0\n[Network]\nAddress=%s/16\nGateway=%s.0.1\n' "$ip" "$net" \
    >"$d/upper/etc/systemd/network/10-host0.network"
  echo "$name" >"$d/upper/etc/hostname"
  mkdir -p "$d/upper/etc/systemd/system/multi-user.target.wants"
  ln -sf /lib/systemd/system/systemd-networkd.service "$d/upper/etc/systemd/system/multi-user.target.wants/"
  install -m 600 "$work/key.pub" "$d/upper/root/.ssh/authorized_keys"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/merged"
  systemd-nspawn --quiet --boot --register=no --keep-unit -M "$name" -D "$d/merged" \
    --network-bridge="$br" >"$d/log" 2>&1 </dev/null &
  echo $! >"$d/pid"
  until ssh -q -i "$work/key" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=1 "root@$ip" true 2>/dev/null; do sleep 0.05; done
}

one_down() {
  local d="$work/c$1" pid
  pid=$(cat "$d/pid")
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  umount "$d/merged"
}

t0=$(ms)
if [ "$mode" = serial ]; then
  for i in $(seq 1 "$n"); do one_up "$i"; done
else
  for i in $(seq 1 "$n"); do one_up "$i" & done
  wait
fi
t1=$(ms)
for i in $(seq 1 "$n"); do one_down "$i" & done
wait
t2=$(ms)
ip link del "$br"
if [ -n "$loop" ]; then umount "$work/lower" && losetup -d "$loop"; fi
rm -rf "$work"
printf '{"n":%s,"mode":"%s","upMs":%s,"downMs":%s}\n' "$n" "$mode" $((t1 - t0)) $((t2 - t1))
