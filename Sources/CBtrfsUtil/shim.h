#ifndef LAYERFS_CBTRFSUTIL_SHIM_H
#define LAYERFS_CBTRFSUTIL_SHIM_H
#include <btrfsutil.h>
#include <sys/vfs.h>

/// BTRFS_SUPER_MAGIC from <linux/magic.h>, as a plain constant Swift can import.
static const unsigned long layerfs_btrfs_super_magic = 0x9123683EUL;
/// BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY is a macro expression; Swift imports this constant instead.
static const int layerfs_btrfs_snapshot_read_only = BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY;
#endif
