#ifndef LAYERFS_CFUSE3_SHIM_H
#define LAYERFS_CFUSE3_SHIM_H
/* The oldest libfuse layerfs supports is 3.14 (Debian 12). FUSE_USE_VERSION must be defined before
 * the header is included, which is why it lives here and not in Swift. */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/* fuse_session_loop_mt is a macro over a versioned symbol in 3.14; Swift cannot import macros. */
static inline int layerfs_fuse_session_loop_mt(struct fuse_session *se, struct fuse_loop_config *config) {
    return fuse_session_loop_mt(se, config);
}
#endif
