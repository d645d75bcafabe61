import CFuse3
import LayerCore
import LayerIndex
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Mount options: layerfs's own, and the rest passed to libfuse and the kernel.
public struct MountOptions: Sendable {
    /// `show_at`: list @time, @block and @history in readdir of the root.
    public var showAt = false
    /// `ro`: the store is opened read-only and every change fails with EROFS.
    public var readOnly = false
    /// `noindex`: no similarity index (`/@similar` answers EAGAIN).
    public var noIndex = false
    /// `index_dir=DIR`, `embedder=NAME`, `model_dir=DIR`: the similarity index.
    public var indexDirectory: String?
    public var embedder = "builtin"
    public var modelDirectory: String?
    /// Options for libfuse and the kernel (allow_other, default_permissions, debug, ...).
    public var fuseOptions: [String] = []

    public init() {}

    /// Parses `-o` values (each a comma-separated list; repeated `-o` accumulate).
    public init(parsing values: [String]) {
        for value in values {
            for option in value.split(separator: ",", omittingEmptySubsequences: true) {
                switch option {
                case "show_at": showAt = true
                case "noindex": noIndex = true
                case let o where o.hasPrefix("index_dir="): indexDirectory = String(o.dropFirst("index_dir=".count))
                case let o where o.hasPrefix("embedder="): embedder = String(o.dropFirst("embedder=".count))
                case let o where o.hasPrefix("model_dir="): modelDirectory = String(o.dropFirst("model_dir=".count))
                case "ro":
                    readOnly = true
                    fuseOptions.append("ro")
                case "rw":
                    readOnly = false
                    fuseOptions.removeAll { $0 == "ro" }
                // The kernel checks permissions against the modes and owners layerfs reports; always on.
                case "default_permissions": continue
                default: fuseOptions.append(String(option))
                }
            }
        }
    }
}

/// A failure to set up the mount, with a message for people.
public struct MountError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case mountPoint, busy, fuse }
    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// One FUSE session over a store: `fuse_session_new`, `fuse_session_mount`, the multithreaded loop,
/// `fuse_session_unmount` and `fuse_session_destroy`, with libfuse's SIGINT/SIGTERM/SIGHUP handlers
/// installed for its lifetime (they end the loop; `run` then unmounts).
///
/// Lifecycle: `init` (creates the session, mounts) → `run()` (serves until unmounted or signalled,
/// then tears down). Not reusable.
public final class FUSESession {
    public let filesystem: LayerFilesystem
    public let mountPoint: String
    private let session: OpaquePointer
    private let logger: Logger
    private var torn = false

    /// Creates the session and mounts it on `mountPoint` (an existing, not yet mounted directory).
    public init(
        store: Store, mountPoint: String, options: MountOptions, similarity: SimilarityIndex? = nil, logger: Logger
    ) throws(MountError) {
        try Self.checkMountPoint(mountPoint)
        self.mountPoint = mountPoint
        self.logger = logger
        let namespace = Namespace(store: store, showAt: options.showAt, similarity: similarity)
        filesystem = LayerFilesystem(namespace: namespace, logger: logger)

        // fsname shows in /proc/mounts and df; a comma would split the option list.
        let source = store.path.contains(",") ? "layerfs" : store.path
        let optionList = (["fsname=" + source, "subtype=layerfs", "default_permissions"] + options.fuseOptions).joined(separator: ",")
        var args = fuse_args(argc: 0, argv: nil, allocated: 0)
        defer { fuse_opt_free_args(&args) }
        for argument in ["layerfs", "-o", optionList] { fuse_opt_add_arg(&args, argument) }

        var ops = Callbacks.operations()
        let userdata = Unmanaged.passUnretained(filesystem).toOpaque()
        guard let session = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata) else {
            throw MountError(.fuse, "libfuse refused the mount options \"\(optionList)\" (see the message above)")
        }
        guard fuse_set_signal_handlers(session) == 0 else {
            fuse_session_destroy(session)
            throw MountError(.fuse, "could not install signal handlers")
        }
        guard fuse_session_mount(session, mountPoint) == 0 else {
            fuse_remove_signal_handlers(session)
            fuse_session_destroy(session)
            throw MountError(.fuse, "could not mount on \(mountPoint) (see the message above)")
        }
        self.session = session
        let access = store.accessMode == .readOnly ? "read-only" : "read-write"
        logger.info("mounted \(store.path) on \(mountPoint) (\(access), head is event \(store.headSequence))")
    }

    /// A mount point must be an existing directory that nothing is mounted on yet.
    static func checkMountPoint(_ path: String) throws(MountError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            throw MountError(.mountPoint, "mount point \(path): \(reason)")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw MountError(.mountPoint, "mount point \(path) is not a directory")
        }
        if isMountPoint(path) {
            throw MountError(.busy, "mount point \(path) is busy: something is already mounted there (unmount it first)")
        }
    }

    /// Where the store at `storePath` is mounted by layerfs already (fsname = its path), if anywhere.
    public static func mountPoint(ofStore storePath: String) -> String? {
        guard let file = fopen("/proc/self/mountinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            // ... mount-point ... " - " fstype source super-options
            let fields = String(cString: line!).split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard let dash = fields.firstIndex(of: "-"), dash > 4, dash + 2 < fields.count else { continue }
            guard fields[dash + 1] == "fuse.layerfs" else { continue }
            if unescapeMountField(fields[dash + 2]) == storePath { return unescapeMountField(fields[4]) }
        }
        return nil
    }

    /// True when `path` (resolved) is a mount point in /proc/self/mountinfo.
    public static func isMountPoint(_ path: String) -> Bool {
        guard let resolved = realpath(path, nil) else { return false }
        let target = String(cString: resolved)
        free(resolved)
        guard let file = fopen("/proc/self/mountinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let fields = String(cString: line!).split(separator: " ")
            if fields.count > 4, unescapeMountField(fields[4]) == target { return true }
        }
        return false
    }

    /// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescapeMountField(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        let raw = Array(field.utf8)
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "\\"), i + 3 < raw.count,
                let value = UInt8(String(decoding: raw[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(raw[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Serves requests on libfuse's worker threads until the file system is unmounted
    /// (`fusermount3 -u`, `umount`) or a signal ends the loop; then unmounts and destroys the
    /// session. Returns the loop's status (0: clean).
    @discardableResult
    public func run() -> Int32 {
        Self.unblockTerminationSignals()
        let config = fuse_loop_cfg_create()
        let status = layerfs_fuse_session_loop_mt(session, config)
        if let config { fuse_loop_cfg_destroy(config) }
        tearDown()
        // Unmounted (or lazily detached): commit what handles still hold before the store closes.
        filesystem.commitAll()
        // A signal that ends the loop (SIGTERM, SIGINT, SIGHUP) is its status: a clean end too.
        if status != 0 && ![SIGTERM, SIGINT, SIGHUP].contains(status) {
            logger.warning("the FUSE loop ended with status \(status)")
        }
        logger.info("unmounted \(mountPoint)")
        return status
    }

    /// The signals libfuse's handlers end the loop on must reach the thread running the loop: the
    /// loop waits in `sem_wait` there, and only a signal delivered to that thread interrupts it
    /// (libfuse blocks them in its workers; a signal taken by any other thread only sets the exit
    /// flag, and the loop would not notice until the next request). A process may start with them
    /// blocked (a mask inherited from the spawning thread: Swift Testing's workers block them), so
    /// unblock them here, on the loop's thread.
    static func unblockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Unmounts (if still mounted) and frees the session. Idempotent.
    public func tearDown() {
        guard !torn else { return }
        torn = true
        fuse_session_unmount(session)
        fuse_remove_signal_handlers(session)
        fuse_session_destroy(session)
    }

    deinit { tearDown() }
}
