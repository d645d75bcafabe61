// The libfuse low-level operation table.
//
// Each callback is a capture-free closure (so it converts to a C function pointer) defined here,
// outside main.swift: closures there are main-actor isolated and trap when libfuse calls them from
// a worker thread (DESIGN.md, "Swift on FUSE"). They find the `LayerFilesystem` through the
// session's userdata pointer (`fuse_req_userdata`), copy `name` into a Swift String before doing
// anything else, and reply exactly once.

import CFuse3
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

enum Callbacks {
    /// The filesystem a request belongs to. The session's userdata is an unretained pointer to it;
    /// `FUSESession` keeps it alive for as long as the session exists.
    static func filesystem(_ req: fuse_req_t?) -> LayerFilesystem {
        Unmanaged<LayerFilesystem>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }

    /// A name from the kernel as a Swift String; nil if it is not valid UTF-8 (no store path can
    /// hold it, so the caller answers ENOENT).
    static func name(_ pointer: UnsafePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        return String(validatingCString: pointer)
    }

    static func readOnly(_ req: fuse_req_t?) { fuse_reply_err(req, EROFS) }

    /// The operations layerfs implements. Everything that would modify the tree answers EROFS in
    /// this read-only slice (the mount is also `ro`, so the kernel refuses most of them first).
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            guard let req else { return }
            guard let name = Callbacks.name(name) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            Callbacks.filesystem(req).lookup(req, parent: parent, name: name)
        }
        ops.forget = { req, ino, count in
            Callbacks.filesystem(req).forget(ino, count: count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let fs = Callbacks.filesystem(req)
            if let forgets {
                for i in 0..<count { fs.forget(forgets[i].ino, count: forgets[i].nlookup) }
            }
            fuse_reply_none(req)
        }
        ops.getattr = { req, ino, _ in
            guard let req else { return }
            Callbacks.filesystem(req).getattr(req, ino)
        }
        ops.readlink = { req, ino in
            guard let req else { return }
            Callbacks.filesystem(req).readlink(req, ino)
        }
        ops.open = { req, ino, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).open(req, ino, fi)
        }
        ops.read = { req, _, size, offset, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).read(req, size: size, offset: Int(offset), fi)
        }
        ops.release = { req, _, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).release(req, fi)
        }
        ops.opendir = { req, ino, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).opendir(req, ino, fi)
        }
        ops.readdir = { req, _, size, offset, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).readdir(req, size: size, offset: Int(offset), fi)
        }
        ops.releasedir = { req, _, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).releasedir(req, fi)
        }
        ops.statfs = { req, _ in
            guard let req else { return }
            Callbacks.filesystem(req).statfs(req)
        }
        ops.getxattr = { req, ino, name, size in
            guard let req else { return }
            guard let name = Callbacks.name(name) else {
                fuse_reply_err(req, ENODATA)
                return
            }
            Callbacks.filesystem(req).getxattr(req, ino, name: name, size: size)
        }
        ops.listxattr = { req, ino, size in
            guard let req else { return }
            Callbacks.filesystem(req).listxattr(req, ino, size: size)
        }

        // Modifications: EROFS (the present becomes writable in a later step of issue 3).
        ops.setattr = { req, _, _, _, _ in Callbacks.readOnly(req) }
        ops.mknod = { req, _, _, _, _ in Callbacks.readOnly(req) }
        ops.mkdir = { req, _, _, _ in Callbacks.readOnly(req) }
        ops.unlink = { req, _, _ in Callbacks.readOnly(req) }
        ops.rmdir = { req, _, _ in Callbacks.readOnly(req) }
        ops.symlink = { req, _, _, _ in Callbacks.readOnly(req) }
        ops.rename = { req, _, _, _, _, _ in Callbacks.readOnly(req) }
        ops.link = { req, _, _, _ in Callbacks.readOnly(req) }
        ops.write = { req, _, _, _, _, _ in Callbacks.readOnly(req) }
        ops.create = { req, _, _, _, _ in Callbacks.readOnly(req) }
        ops.setxattr = { req, _, _, _, _, _ in Callbacks.readOnly(req) }
        ops.removexattr = { req, _, _ in Callbacks.readOnly(req) }
        ops.fallocate = { req, _, _, _, _, _ in Callbacks.readOnly(req) }
        return ops
    }
}
