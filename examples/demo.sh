#!/usr/bin/env bash
# The layerfs demo: create a store, start tracking a config tree, mount it, change elements through
# the mount with ordinary tools, look at history and past states as directories (@time, @history,
# @block), ask a question (@similar), unmount (which seals a block), verify the chain and the
# blocks' signatures, check an inclusion proof, and watch verify catch a tampered copy.
#
# Run it through scripts/demo.sh (which builds layerfs), or with LAYERFS=/path/to/layerfs.
# As root with btrfs-progs installed, the store lives on a small loop-mounted btrfs so that sealing
# takes real read-only snapshots; the loop filesystem is unmounted and removed at the end, whatever
# happens.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
layerfs="${LAYERFS:-layerfs}"

work="$(mktemp -d /tmp/layerfs-demo.XXXXXX)"
mounted=""
fusemount=""
cleanup() {
  if [ -n "$fusemount" ]; then
    for _ in 1 2 3 4 5; do fusermount3 -u "$fusemount" 2>/dev/null && break; sleep 0.3; done
    mountpoint -q "$fusemount" && umount -l "$fusemount"
  fi
  if [ -n "$mounted" ]; then
    for _ in 1 2 3 4 5; do umount "$mounted" 2>/dev/null && break; sleep 0.3; done
    mountpoint -q "$mounted" && umount -l "$mounted"
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

base="$work"
if [ "$(id -u)" -eq 0 ] && command -v mkfs.btrfs >/dev/null && [ -e /dev/loop-control ]; then
  truncate -s 256M "$work/btrfs.img"
  mkfs.btrfs -q "$work/btrfs.img" >/dev/null 2>&1
  mkdir "$work/btrfs"
  mount -o loop "$work/btrfs.img" "$work/btrfs"
  mounted="$work/btrfs"
  base="$work/btrfs"
fi
store="$base/store"
tree="$work/etc"
cp -r "$here/etc" "$tree"

step "1. Create a store, with a key that signs every block it seals (kept outside the store)"
run "$layerfs" init "$store"
mkdir -m 0700 "$work/keys"
run "$layerfs" keygen "$work/keys/demo" --store "$store"

step "2. Start tracking an existing config tree, and seal it as block 1"
run "$layerfs" import --seal "$store" "$tree"
before="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
sleep 1

have_fuse=""
if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then have_fuse=1; fi
mnt="$work/mnt"
mkdir "$mnt"
if [ -n "$have_fuse" ]; then
  step "3. Mount it, and change elements through the mount with ordinary tools"
  # The similarity index lives outside the store; here in the demo's scratch directory.
  run "$layerfs" mount "$store" "$mnt" -o index_dir="$work/index"
  fusemount="$mnt"
  run ls "$mnt"
  run sed -i 's/mtu 1500/mtu 9000/' "$mnt/network/interfaces.d/eth0.conf"
  echo "\$ printf '10.0.0.3    edge-3.lab edge-3\\n' >> $mnt/hosts"
  printf '10.0.0.3    edge-3.lab edge-3\n' >> "$mnt/hosts"
  run rm "$mnt/ssh/sshd_config"
  run mkdir "$mnt/services/haproxy"
  echo "\$ printf '[Service]...' > $mnt/services/haproxy/haproxy.service"
  printf '[Service]\nExecStart=/usr/bin/haproxy -f /etc/haproxy.cfg\n' > "$mnt/services/haproxy/haproxy.service"
  run cat "$mnt/network/interfaces.d/eth0.conf"
else
  step "3. Change elements (no FUSE here: in a copy of the tree, then import the changes)"
  sed -i 's/mtu 1500/mtu 9000/' "$tree/network/interfaces.d/eth0.conf"
  printf '10.0.0.3    edge-3.lab edge-3\n' >> "$tree/hosts"
  rm "$tree/ssh/sshd_config"
  mkdir -p "$tree/services/haproxy"
  printf '[Service]\nExecStart=/usr/bin/haproxy -f /etc/haproxy.cfg\n' > "$tree/services/haproxy/haproxy.service"
  run "$layerfs" import "$store" "$tree"
fi
after="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"

step "4. History: each change above is one event (the log is readable while mounted)"
run "$layerfs" log "$store" --since "$before"
run "$layerfs" log "$store" --path /network/interfaces.d/eth0.conf

if [ -n "$have_fuse" ]; then
  step "5. The past, as directories: @time, @history and @block"
  echo '$ ls @time   (a directory per event; the @ names are hidden from ls of the root)'
  ls "$mnt/@time" | tail -n 4
  run cat "$mnt/@time/$before/network/interfaces.d/eth0.conf"
  echo "--- diff -r of the whole tree before and after the changes:"
  echo "\$ diff -r $mnt/@time/$before $mnt/@time/$after"
  diff -r "$mnt/@time/$before" "$mnt/@time/$after" || true
  run ls "$mnt/@history/network/interfaces.d/eth0.conf"
  versions=("$mnt/@history/network/interfaces.d/eth0.conf"/*)
  echo "--- diff of the last two versions of eth0.conf:"
  diff "${versions[-2]}" "${versions[-1]}" || true
  run ls "$mnt/@block" "$mnt/@block/1"
  if command -v getfattr >/dev/null; then
    echo '$ getfattr -d (who made each version: provenance as extended attributes)'
    getfattr -d "${versions[-1]}" | sed "s|$mnt|MNT|"
  fi
  echo '$ stat -c "%i %n" (an unchanged version has one inode in every view: diff -r skips it)'
  stat -c '%i %n' "$mnt/@block/1/services/nginx.service" "$mnt/@time/$after/services/nginx.service" \
    "$mnt/@history/services/nginx.service/"*
  echo '$ ls "@similar/which interfaces are bridges#3"   (a question as a directory name: the best matches)'
  for _ in $(seq 100); do grep -q "(0 behind)" "$mnt/@similar/.status" 2>/dev/null && break; sleep 0.1; done
  ls "$mnt/@similar/which interfaces are bridges#3"
  best=("$mnt/@similar/which interfaces are bridges#3"/*)
  echo "\$ cat \"${best[0]#$mnt/}\"   (a symlink into @history: exactly the version that matched)"
  cat "${best[0]}"
  run cat "$mnt/@similar/.status"
  echo "--- the time directories are ordinary trees: rsync, tar, cp -a all work"
  run rsync -a "$mnt/@time/$before/" "$work/restored/"
  run ls "$work/restored"

  step "6. Unmount: the store is closed and the new events are sealed into block 2"
  run fusermount3 -u "$mnt"
  fusemount=""
  # The daemon seals and closes the store right after the unmount: wait until it let go.
  for _ in $(seq 100); do "$layerfs" status "$store" | grep -q '^writer  *none' && break; sleep 0.1; done
else
  step "5-6. Seal a block"
  run "$layerfs" seal "$store"
fi
run "$layerfs" status "$store"

step "7. Verify the chain, and every block's signature with the public key"
run "$layerfs" verify "$store" --pubkey "$work/keys/demo.pub"
echo "--- a Merkle inclusion proof of event 5 in its block, checked offline (no store needed)"
run "$layerfs" prove "$store" --seq 5 --output "$work/event-5.proof"
run "$layerfs" verify-proof "$work/event-5.proof" --pubkey "$work/keys/demo.pub"

step "8. Tamper with a copy: change one byte of one event, then verify again"
cp -a "$store/." "$work/tampered"
sed -i 's/mtu 1500/mtu 1501/' "$work/tampered/events.jsonl"  # event 5: the first eth0.conf
set +e
"$layerfs" verify "$work/tampered"
status=$?
set -e
echo "verify exited with $status (65: the store failed verification)"
[ "$status" -eq 65 ]

step "Done"
echo "The store lived in $store; it is removed now."
