#!/usr/bin/env bash
# Installs what aplspawn and its tests need on Debian/Ubuntu, builds it, and puts `aplspawn` on PATH.
# Run as root from the repository: `sudo bash scripts/install.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo bash scripts/install.sh)" >&2
  exit 2
fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install.sh: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# systemd-container: systemd-nspawn; fdisk: sfdisk; squashfs-tools, debootstrap: image build;
# openssh-client: ssh, ssh-keygen; ansible-core: the inventory check; psmisc: fuser (who holds a mount);
# e2fsprogs: mkfs.ext4, each container's own file system (containers.diskMax);
# python3: containers.privateUsers' idmapped mounts (src/lab/idmap-mount.ts); debian-archive-keyring,
# gpgv: image build checks the mirror's signature; skopeo, umoci: OCI images (image.oci);
# docker-registry: the OCI tests' registry on loopback; gnupg, openssl: the download tests sign checksums
# and serve https with a key and certificate they make; tmux, zsh, fish: the tests of the terminal
# and of the completion scripts; dpkg-dev: the image.packages test indexes its apt repository. src/host/programs.ts names the package of each program aplspawn
# runs: test/cli/programs.test.ts checks that this list has them all.
apt-get install -y -qq --no-install-recommends \
  systemd-container iptables iproute2 util-linux mount kmod debootstrap squashfs-tools fdisk e2fsprogs \
  openssh-client ansible-core python3 psmisc procps curl ca-certificates debian-archive-keyring gpgv \
  gnupg openssl tmux zsh fish skopeo umoci docker-registry dpkg-dev >/dev/null
# The unprivileged account aplspawn runs Ansible as against a lab without owner (a root shell, CI):
# never root against containers that run other people's code (src/lab/owner.ts ANSIBLE_ACCOUNT).
if ! id -u aplspawn >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/aplspawn-ansible --create-home \
    --shell /usr/sbin/nologin --comment "aplspawn runs Ansible as this account for labs without owner" aplspawn
fi
chmod 0700 /var/lib/aplspawn-ansible
npm ci --no-audit --no-fund
npm run build
npm link --no-audit --no-fund >/dev/null
echo "install.sh: aplspawn $(aplspawn --version) installed at $(command -v aplspawn)"
