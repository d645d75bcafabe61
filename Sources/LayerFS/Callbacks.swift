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

    /// A name for a new entry (or a symlink target): one that is not UTF-8 cannot be stored, so the
    /// request fails with EILSEQ (replied here; nil means done).
    static func newName(_ req: fuse_req_t, _ pointer: UnsafePointer<CChar>?) -> String? {
        guard let name = name(pointer) else {
            fuse_reply_err(req, EILSEQ)
            return nil
        }
        return name
    }

    /// libfuse's `init`: what layerfs wants of the kernel.
    static func configure(_ conn: UnsafeMutablePointer<fuse_conn_info>?) {
        guard let conn else { return }
        // open(O_TRUNC) arrives as one open with the flag (not a setattr first): one event with the writes.
        if conn.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
            conn.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
        }
        // Bigger writes: fewer requests for large files.
        conn.pointee.max_write = 1 << 20
    }

    /// The operations layerfs implements (see LayerFilesystem.swift and Writes.swift).
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { _, conn in Callbacks.configure(conn) }
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
        ops.readdirplus = { req, _, size, offset, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).readdirplus(req, size: size, offset: Int(offset), fi)
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

        ops.flush = { req, _, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).flushOrSync(req, fi, "flush")
        }
        ops.fsync = { req, _, _, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).flushOrSync(req, fi, "fsync")
        }
        ops.fsyncdir = { req, _, _, _ in fuse_reply_err(req, 0) }  // directory changes are durable when replied
        ops.write = { req, _, buf, size, offset, fi in
            guard let req, let fi else { return }
            Callbacks.filesystem(req).write(req, UnsafeRawBufferPointer(start: buf, count: size), offset: Int(offset), fi)
        }
        ops.create = { req, parent, name, mode, fi in
            guard let req, let fi else { return }
            guard let name = Callbacks.newName(req, name) else { return }
            Callbacks.filesystem(req).create(req, parent: parent, name: name, mode: mode, fi)
        }
        ops.mknod = { req, parent, name, mode, _ in
            guard let req, let name = Callbacks.newName(req, name) else { return }
            Callbacks.filesystem(req).mknod(req, parent: parent, name: name, mode: mode)
        }
        ops.mkdir = { req, parent, name, mode in
            guard let req, let name = Callbacks.newName(req, name) else { return }
            Callbacks.filesystem(req).mkdir(req, parent: parent, name: name, mode: mode)
        }
        ops.symlink = { req, link, parent, name in
            guard let req, let name = Callbacks.newName(req, name) else { return }
            guard let target = Callbacks.newName(req, link) else { return }
            Callbacks.filesystem(req).symlink(req, target: target, parent: parent, name: name)
        }
        ops.unlink = { req, parent, name in
            guard let req else { return }
            guard let name = Callbacks.name(name) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            Callbacks.filesystem(req).unlink(req, parent: parent, name: name)
        }
        ops.rmdir = { req, parent, name in
            guard let req else { return }
            guard let name = Callbacks.name(name) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            Callbacks.filesystem(req).rmdir(req, parent: parent, name: name)
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            guard let req else { return }
            guard let name = Callbacks.name(name) else {
                fuse_reply_err(req, ENOENT)
                return
            }
            guard let newName = Callbacks.newName(req, newName) else { return }
            Callbacks.filesystem(req).rename(req, parent: parent, name: name, newParent: newParent, newName: newName, flags: flags)
        }
        ops.link = { req, ino, newParent, _ in
            guard let req else { return }
            Callbacks.filesystem(req).link(req, ino, newParent: newParent)
        }
        ops.setattr = { req, ino, attr, toSet, fi in
            guard let req, let attr else { return }
            Callbacks.filesystem(req).setattr(req, ino, attr.pointee, toSet: toSet, fi)
        }
        ops.setxattr = { req, ino, _, _, _, _ in
            guard let req else { return }
            Callbacks.filesystem(req).setOrRemoveXattr(req, ino)
        }
        ops.removexattr = { req, ino, _ in
            guard let req else { return }
            Callbacks.filesystem(req).setOrRemoveXattr(req, ino)
        }
        ops.fallocate = { req, _, _, _, _, _ in fuse_reply_err(req, EOPNOTSUPP) }
        ops.copy_file_range = nil  // the kernel falls back to read + write
        return ops
    }
}
