#!/usr/bin/env bash
# Installs the Debian packages layerfs needs to build, test and run, when they are missing.
# Used by scripts/demo.sh, scripts/test.sh and .ci/run. Safe to run again: it installs nothing
# that is already there. With --bench it also installs the peers bench/peer-bench.py compares
# layerfs with (not needed to build or test).
set -euo pipefail

packages=(
  pkg-config      # finds the C libraries below
  libssl-dev      # OpenSSL libcrypto: SHA-256 (and Ed25519)
  libfuse3-dev    # libfuse 3 low-level API (the mount)
  fuse3           # fusermount3, /etc/fuse.conf
  libbtrfsutil-dev  # btrfs subvolumes and snapshots through the C API
  libhnswlib-dev  # hnswlib (header-only C++): the similarity index
  libopenblas-dev # OpenBLAS's CBLAS: the MiniLM encoder's matrix products
  btrfs-progs     # mkfs.btrfs for the loop-mounted btrfs in tests and the demo
  util-linux      # losetup, mount
  python3         # tools/verify-format.py, the independent format verifier; bench/mount-bench.py
  python3-hypothesis  # Tests/posix/model.py: the model-based test (stateful Hypothesis)
  rsync           # mount tests: rsync from time directories
  attr            # getfattr/setfattr: provenance xattrs in the demo and the tests
  e2fsprogs       # mkfs.ext4 for the small full-disk filesystem in the ENOSPC mount test
  openssh-client  # layerfs-replicate streams over ssh
  openssh-server  # the replication test runs its own sshd on 127.0.0.1 (see below)
  fio             # Tests/robustness/test_load.py: verified (crc32c) sequential and random writes through a mount
  stress-ng       # Tests/robustness/test_load.py: filesystem stressors against a mount
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(
    restic          # bench/peer-bench.py: restic backup / restic mount (mounts with fusermount3)
    borgbackup      # bench/peer-bench.py: borg create / borg mount
    python3-pyfuse3 # what borg mount (borg 1.2) uses for FUSE 3; Debian only recommends it
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # openssh-server is here only for the test's private sshd (127.0.0.1, its own keys, stopped after
  # the test). If this run installed it, do not leave the system's ssh service enabled and listening.
  if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    echo "install-deps: installed openssh-server for the replication test; its system service is disabled" >&2
  fi
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "install-deps: Swift 6 is not on PATH. Install a Swift 6 toolchain for Linux first." >&2
  exit 1
fi
