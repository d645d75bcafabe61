#!/usr/bin/env bash
# The layerfs demo: create a store, start tracking a config tree, change elements, look at history
# and at past states, seal a block, verify the chain, and watch verify catch a tampered copy.
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

step "1. Create a store"
run "$layerfs" init "$store"

step "2. Start tracking an existing config tree"
run "$layerfs" import "$store" "$tree"
before="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
sleep 1

step "3. Change elements with ordinary tools, then record the changes"
sed -i 's/mtu 1500/mtu 9000/' "$tree/network/interfaces.d/eth0.conf"
printf '10.0.0.3    edge-3.lab edge-3\n' >> "$tree/hosts"
rm "$tree/ssh/sshd_config"
mkdir -p "$tree/services"
printf '[Service]\nExecStart=/usr/bin/haproxy -f /etc/haproxy.cfg\n' > "$tree/services/haproxy.service"
run "$layerfs" import "$store" "$tree"
after="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"

step "4. History: the whole log, then one element"
run "$layerfs" log "$store"
run "$layerfs" log "$store" --path /network/interfaces.d/eth0.conf

step "5. Time travel: the tree and one element as they were before the changes ($before)"
run "$layerfs" show "$store" --at "$before" /network/interfaces.d
run "$layerfs" show "$store" --at "$before" /network/interfaces.d/eth0.conf
echo "--- diff of eth0.conf, then -> now:"
diff <("$layerfs" show "$store" --at "$before" /network/interfaces.d/eth0.conf) \
     <("$layerfs" show "$store" --at "$after" /network/interfaces.d/eth0.conf) || true

step "6. Seal a block and look at the store"
printf 'PermitRootLogin no\n' > "$tree/ssh/sshd_config"
run "$layerfs" import "$store" "$tree"
run "$layerfs" seal "$store" || true
run "$layerfs" status "$store"

step "7. Verify the chain"
run "$layerfs" verify "$store"

if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
  step "8. Mount the store and browse history with ordinary tools (read-only for now)"
  mkdir "$work/mnt"
  run "$layerfs" mount "$store" "$work/mnt"
  fusemount="$work/mnt"
  run ls "$work/mnt"
  run cat "$work/mnt/network/interfaces.d/eth0.conf"
  echo '$ ls @time   (every event has a directory; the @ names are hidden from ls of the root)'
  ls "$work/mnt/@time" | tail -n 4
  run cat "$work/mnt/@time/$before/network/interfaces.d/eth0.conf"
  echo "--- diff -r of the tree before and after the changes:"
  diff -r "$work/mnt/@time/$before" "$work/mnt/@time/$after" || true
  run ls "$work/mnt/@history/network/interfaces.d/eth0.conf"
  run ls "$work/mnt/@block"
  echo '$ stat -c "%i %n" (the same version has the same inode in every view)'
  stat -c '%i %n' "$work/mnt/@time/$before/hosts" "$work/mnt/@time/$before/services/nginx.service" \
    "$work/mnt/services/nginx.service"
  run fusermount3 -u "$work/mnt"
  fusemount=""
fi

step "9. Tamper with a copy: change one byte of one event, then verify again"
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
