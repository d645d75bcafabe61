import CBtrfsUtil

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Typed access to btrfs subvolumes and snapshots through libbtrfsutil's C API.
///
/// The store lives in a subvolume when its parent is on btrfs, and each block seal takes a
/// read-only snapshot of it (DESIGN.md, "Blocks"). Everything here goes through libbtrfsutil;
/// nothing shells out to btrfs-progs.
///
/// Errors are `LayerError`s whose message names the C function, the libbtrfsutil error text
/// (`btrfs_util_strerror`) and the errno, with `path` set. libbtrfsutil reports *what* failed in
/// its return code and *why* in errno: it sets errno on every failure (also for its own logical
/// errors, e.g. `BTRFS_UTIL_ERROR_NOT_SUBVOLUME` comes with EINVAL), so errno is cleared before
/// each call and read straight after it, before anything else can overwrite it.
///
/// Privileges: creating subvolumes and snapshots needs write access to the parent directory (and,
/// for a snapshot, ownership of the source); deleting a subvolume needs CAP_SYS_ADMIN unless the
/// filesystem is mounted with `user_subvol_rm_allowed`.
enum Btrfs {
    /// Whether `path` is on a btrfs filesystem: `f_type` of its `statfs` is BTRFS_SUPER_MAGIC.
    ///
    /// The corresponding C function is `statfs`; the magic is `layerfs_btrfs_super_magic` from
    /// the CBtrfsUtil shim.
    static func isBtrfs(_ path: String) throws(LayerError) -> Bool {
        var info = statfs()
        var result: Int32
        repeat {
            result = statfs(path, &info)
        } while result == -1 && errno == EINTR
        if result == -1 {
            throw LayerError.system("statfs", errno: errno, path: path)
        }
        // f_type is a signed word; compare the low 32 bits so a sign-extended magic still matches.
        return UInt32(truncatingIfNeeded: info.f_type)
            == UInt32(truncatingIfNeeded: layerfs_btrfs_super_magic)
    }

    /// Whether `path` is the root of a btrfs subvolume. A path that is not on btrfs, or is on
    /// btrfs but is not a subvolume root, gives `false`; other failures (a missing path, no
    /// permission) throw.
    ///
    /// The corresponding C function is `btrfs_util_is_subvolume`.
    static func isSubvolume(_ path: String) throws(LayerError) -> Bool {
        let (error, savedErrno) = call { btrfs_util_is_subvolume(path) }
        switch error {
        case BTRFS_UTIL_OK: return true
        case BTRFS_UTIL_ERROR_NOT_SUBVOLUME, BTRFS_UTIL_ERROR_NOT_BTRFS: return false
        default:
            throw failure("btrfs_util_is_subvolume", error, savedErrno, path: path)
        }
    }

    /// Creates a new, empty subvolume at `path` (whose parent must exist on btrfs).
    ///
    /// The corresponding C function is `btrfs_util_create_subvolume`.
    static func createSubvolume(at path: String) throws(LayerError) {
        let (error, savedErrno) = call { btrfs_util_create_subvolume(path, 0, nil, nil) }
        if error != BTRFS_UTIL_OK {
            throw failure("btrfs_util_create_subvolume", error, savedErrno, path: path)
        }
    }

    /// Creates a read-only snapshot of the subvolume `source` at `path`.
    ///
    /// `source` is checked first with `btrfs_util_is_subvolume`, so a plain directory is refused
    /// with an error naming `source` (`path` of the error is `source`), whatever the kernel would
    /// make of it. A failure of the snapshot itself names both paths and sets `path` to the
    /// destination. libbtrfsutil reports a failed snapshot ioctl as
    /// `BTRFS_UTIL_ERROR_SUBVOL_CREATE_FAILED` ("Could not create subvolume"), not as
    /// `..._SNAP_CREATE_FAILED`; errno tells the cause.
    ///
    /// The corresponding C function is `btrfs_util_create_snapshot`, with the flag
    /// `BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY` (`layerfs_btrfs_snapshot_read_only`).
    static func createReadOnlySnapshot(of source: String, at path: String) throws(LayerError) {
        let (check, checkErrno) = call { btrfs_util_is_subvolume(source) }
        if check != BTRFS_UTIL_OK {
            throw failure(
                "btrfs_util_is_subvolume", check, checkErrno, path: source,
                context: "snapshot source \(source)")
        }
        let (error, savedErrno) = call {
            btrfs_util_create_snapshot(source, path, layerfs_btrfs_snapshot_read_only, nil, nil)
        }
        if error != BTRFS_UTIL_OK {
            throw failure(
                "btrfs_util_create_snapshot", error, savedErrno, path: path,
                context: "\(source) -> \(path)")
        }
    }

    /// Whether the subvolume at `path` is read-only. Throws if `path` is not a subvolume root.
    ///
    /// The corresponding C function is `btrfs_util_get_subvolume_read_only`.
    static func isReadOnly(_ path: String) throws(LayerError) -> Bool {
        var readOnly = false
        let (error, savedErrno) = call { btrfs_util_get_subvolume_read_only(path, &readOnly) }
        if error != BTRFS_UTIL_OK {
            throw failure("btrfs_util_get_subvolume_read_only", error, savedErrno, path: path)
        }
        return readOnly
    }

    /// Deletes the subvolume or snapshot at `path`, with its contents. Fails (ENOTEMPTY) if it
    /// contains other subvolumes. Needs CAP_SYS_ADMIN unless mounted `user_subvol_rm_allowed`.
    ///
    /// The corresponding C function is `btrfs_util_delete_subvolume` (flags 0: not recursive).
    static func deleteSubvolume(at path: String) throws(LayerError) {
        let (error, savedErrno) = call { btrfs_util_delete_subvolume(path, 0) }
        if error != BTRFS_UTIL_OK {
            throw failure("btrfs_util_delete_subvolume", error, savedErrno, path: path)
        }
    }

    // MARK: - Internals

    /// Runs one libbtrfsutil call with errno cleared beforehand, and returns its result together
    /// with errno read immediately afterwards.
    private static func call(
        _ body: () -> btrfs_util_error
    ) -> (btrfs_util_error, Int32) {
        errno = 0
        let result = body()
        let savedErrno = errno
        return (result, savedErrno)
    }

    /// The `LayerError` for a failed libbtrfsutil call.
    private static func failure(
        _ function: String, _ error: btrfs_util_error, _ savedErrno: Int32, path: String,
        context: String? = nil, file: String = #fileID, line: Int = #line
    ) -> LayerError {
        let code: LayerError.Code
        switch savedErrno {
        case ENOENT: code = .notFound
        case EEXIST: code = .alreadyExists
        case EPERM, EACCES: code = .permission
        case EROFS: code = .readOnly
        case ENOSPC, EDQUOT: code = .noSpace
        case ENOTEMPTY: code = .directoryNotEmpty
        case EBUSY: code = .busy
        default: code = .io
        }
        let text = btrfs_util_strerror(error).map { String(cString: $0) } ?? "unknown error"
        let cause =
            savedErrno == 0
            ? "errno not set" : "errno \(savedErrno) (\(String(cString: strerror(savedErrno))))"
        let message =
            "\(function)(\(context ?? path)): \(text) [libbtrfsutil error \(error.rawValue)], "
            + cause
        return LayerError(
            code, message, path: path, errno: savedErrno == 0 ? nil : savedErrno, file: file,
            line: line)
    }
}
