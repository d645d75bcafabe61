#!/bin/sh
# Installs (or removes) layerfs and its mount helpers:
#
#   PREFIX/bin/layerfs                   the binary, from a SwiftPM build directory
#   PREFIX/bin/layerfs-replicate         mount-helpers/layerfs-replicate (send | ssh receive)
#   /sbin/mount.fuse.layerfs             mount-helpers/mount.layerfs, found by mount(8) for type fuse.layerfs
#   /sbin/mount.layerfs                  a symlink to it, for type layerfs
#   UNITDIR/layerfs@.service             the systemd template unit
#
# The installed helper and unit name PREFIX/bin/layerfs. mount(8) looks for helpers only in /sbin
# (and /sbin/fs.d, /sbin/fs), so --sbindir is for packaging and tests. DESTDIR, if set, is put in
# front of every path (for packaging; systemd is then not reloaded).
set -eu

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(dirname "$here")

usage() {
    cat <<EOF
usage: $prog [--prefix DIR] [--build-dir DIR] [--sbindir DIR] [--unitdir DIR] [--no-systemd]
       $prog --uninstall [--prefix DIR] [--sbindir DIR] [--unitdir DIR] [--no-systemd]

  --prefix DIR      where the binary goes: DIR/bin/layerfs (default /usr/local)
  --build-dir DIR   the directory holding the built layerfs (default: the first of .build/release
                    and .build/debug in the repository that has one; a scratch path such as
                    .build-x is also accepted, for its release/ or debug/)
  --sbindir DIR     where the mount helpers go (default /sbin: the only place mount(8) looks)
  --unitdir DIR     where layerfs@.service goes (default PREFIX/lib/systemd/system for the /usr and
                    /usr/local prefixes, /etc/systemd/system otherwise)
  --no-systemd      do not install (or remove) the systemd unit
  --uninstall       remove what an install put there (a helper or unit that is not layerfs's stays)
EOF
}

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

prefix=/usr/local
build_dir=
sbindir=/sbin
unitdir=
systemd=1
uninstall=0
while [ $# -gt 0 ]; do
    case $1 in
        --prefix | --build-dir | --sbindir | --unitdir)
            [ $# -ge 2 ] || die "$1 needs an argument"
            case $1 in
                --prefix) prefix=$2 ;;
                --build-dir) build_dir=$2 ;;
                --sbindir) sbindir=$2 ;;
                --unitdir) unitdir=$2 ;;
            esac
            shift
            ;;
        --prefix=*) prefix=${1#*=} ;;
        --build-dir=*) build_dir=${1#*=} ;;
        --sbindir=*) sbindir=${1#*=} ;;
        --unitdir=*) unitdir=${1#*=} ;;
        --no-systemd) systemd=0 ;;
        --uninstall) uninstall=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
    esac
    shift
done

case $prefix in /*) ;; *) die "--prefix must be an absolute path: $prefix" ;; esac
case $sbindir in /*) ;; *) die "--sbindir must be an absolute path: $sbindir" ;; esac
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/
if [ -z "$unitdir" ]; then
    case $prefix in
        /usr | /usr/local) unitdir=$prefix/lib/systemd/system ;;
        *) unitdir=/etc/systemd/system ;;
    esac
fi
case $unitdir in /*) ;; *) die "--unitdir must be an absolute path: $unitdir" ;; esac

destdir=${DESTDIR:-}
binary=${prefix%/}/bin/layerfs
replicate=${prefix%/}/bin/layerfs-replicate
replicate_marker='# layerfs-replicate: bring a replica up to date'
helper=$sbindir/mount.fuse.layerfs
helper_link=$sbindir/mount.layerfs
unit=$unitdir/layerfs@.service
# Lines that mark files as ours, so --uninstall never removes someone else's.
helper_marker='# mount.layerfs: the mount(8) helper for layerfs stores.'
unit_marker='# layerfs@.service: serve one layerfs store'

reload_systemd() {
    if [ $systemd -eq 1 ] && [ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload || printf '%s: warning: systemctl daemon-reload failed\n' "$prog" >&2
    fi
}

is_ours() { # FILE MARKER
    [ -f "$1" ] && grep -qF -- "$2" "$1"
}

if [ $uninstall -eq 1 ]; then
    if [ -z "$destdir" ] && grep -q ' fuse\.layerfs ' /proc/mounts 2>/dev/null; then
        printf '%s: note: layerfs stores are still mounted; they keep running until unmounted\n' "$prog" >&2
    fi
    if [ -L "$destdir$helper_link" ] || is_ours "$destdir$helper_link" "$helper_marker"; then
        rm -f "$destdir$helper_link" && echo "removed $destdir$helper_link"
    elif [ -e "$destdir$helper_link" ]; then
        printf '%s: left %s alone: not installed by layerfs\n' "$prog" "$destdir$helper_link" >&2
    fi
    if is_ours "$destdir$helper" "$helper_marker"; then
        rm -f "$destdir$helper" && echo "removed $destdir$helper"
    elif [ -e "$destdir$helper" ]; then
        printf '%s: left %s alone: not installed by layerfs\n' "$prog" "$destdir$helper" >&2
    fi
    if [ $systemd -eq 1 ]; then
        if is_ours "$destdir$unit" "$unit_marker"; then
            rm -f "$destdir$unit" && echo "removed $destdir$unit"
            reload_systemd
        elif [ -e "$destdir$unit" ]; then
            printf '%s: left %s alone: not installed by layerfs\n' "$prog" "$destdir$unit" >&2
        fi
    fi
    if is_ours "$destdir$replicate" "$replicate_marker"; then
        rm -f "$destdir$replicate" && echo "removed $destdir$replicate"
    elif [ -e "$destdir$replicate" ]; then
        printf '%s: left %s alone: not installed by layerfs\n' "$prog" "$destdir$replicate" >&2
    fi
    if [ -e "$destdir$binary" ]; then
        rm -f "$destdir$binary" && echo "removed $destdir$binary"
    fi
    exit 0
fi

# The built binary.
if [ -z "$build_dir" ]; then
    for candidate in "$repo/.build/release" "$repo/.build/debug"; do
        if [ -x "$candidate/layerfs" ]; then
            build_dir=$candidate
            break
        fi
    done
    [ -n "$build_dir" ] || die "no built layerfs in $repo/.build/release or $repo/.build/debug: run \`swift build -c release\` first, or give --build-dir"
fi
source_binary=
for candidate in "$build_dir/layerfs" "$build_dir/release/layerfs" "$build_dir/debug/layerfs"; do
    if [ -f "$candidate" ] && [ -x "$candidate" ]; then
        source_binary=$candidate
        break
    fi
done
[ -n "$source_binary" ] || die "no layerfs executable in $build_dir (nor in its release/ or debug/)"
[ -f "$here/mount.layerfs" ] || die "missing $here/mount.layerfs"
[ -f "$here/layerfs@.service" ] || die "missing $here/layerfs@.service"
[ -f "$here/layerfs-replicate" ] || die "missing $here/layerfs-replicate"

# sed replacement text: escape \, & and the | delimiter.
quoted_binary=$(printf '%s\n' "$binary" | sed 's/[\\&|]/\\&/g')

install -d -m 0755 "$destdir${prefix%/}/bin" "$destdir$sbindir"
# Through a temporary name and a rename, so a running layerfs keeps its (unlinked) file.
install -m 0755 "$source_binary" "$destdir$binary.new"
mv -f "$destdir$binary.new" "$destdir$binary"
echo "installed $source_binary as $destdir$binary"

# layerfs-replicate runs the installed layerfs on this side unless $LAYERFS says otherwise.
sed "s|^local_layerfs=.*|local_layerfs=\${LAYERFS:-$quoted_binary}|" "$here/layerfs-replicate" >"$destdir$replicate.new"
chmod 0755 "$destdir$replicate.new"
mv -f "$destdir$replicate.new" "$destdir$replicate"
echo "installed $destdir$replicate"

sed "s|^installed_binary=.*|installed_binary=$quoted_binary|" "$here/mount.layerfs" >"$destdir$helper.new"
chmod 0755 "$destdir$helper.new"
mv -f "$destdir$helper.new" "$destdir$helper"
echo "installed $destdir$helper"
if [ -e "$destdir$helper_link" ] && [ ! -L "$destdir$helper_link" ] && ! is_ours "$destdir$helper_link" "$helper_marker"; then
    printf '%s: left %s alone: not installed by layerfs (type layerfs will not use this helper)\n' "$prog" "$destdir$helper_link" >&2
else
    ln -sf mount.fuse.layerfs "$destdir$helper_link"
    echo "installed $destdir$helper_link -> mount.fuse.layerfs"
fi

if [ $systemd -eq 1 ]; then
    install -d -m 0755 "$destdir$unitdir"
    sed "s|^ExecStart=/usr/local/bin/layerfs |ExecStart=$quoted_binary |" "$here/layerfs@.service" >"$destdir$unit.new"
    chmod 0644 "$destdir$unit.new"
    mv -f "$destdir$unit.new" "$destdir$unit"
    echo "installed $destdir$unit"
    reload_systemd
fi
