import ArgumentParser
import LayerCore
import LayerFS
import LayerIndex
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs mount STORE MOUNTPOINT [-f] [-o OPTIONS]`: serve a store through FUSE.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a store: the present read-write; @time, @block, @history and @similar read-only.",
        discussion: """
            Serves the store through FUSE on MOUNTPOINT, an existing empty directory:

              MOUNTPOINT/                     the present: read-write, every committed change is an event
              MOUNTPOINT/@time/<time>/        the tree as of <time>: any form `--at` accepts, or latest;
                                              `ls @time` lists the canonical time of every event
              MOUNTPOINT/@block/<n>/          the tree as sealed in block n (or latest)
              MOUNTPOINT/@history/<path>/     every version of one element, one file per change named
                                              by its canonical time; a deletion is `<time>.deleted`
              MOUNTPOINT/@similar/<query>/    the versions most similar to <query>, best first, as
                                              symlinks into @history (`<query>#k` for k of them);
                                              @similar/.status shows the index's state

            The similarity index lives outside the store (-o index_dir=DIR; default \
            /var/lib/layerfs/index/<store id>/) and is kept up to date on a thread of its own: \
            -o embedder=minilm[,model_dir=DIR] uses all-MiniLM-L6-v2 instead of the built-in \
            embedder, -o noindex mounts without it. While it is being built, queries fail with \
            EAGAIN.

            The @ names are not listed by `ls` of the root (so rsync, find and du stay in the present) \
            unless mounted with `-o show_at`; they always resolve by name. Files in every view carry \
            their provenance as extended attributes: `getfattr -d FILE` shows user.layerfs.seq, .hash, \
            .time, .uid, .gid, .pid, .process and, once sealed, .block and .proof (the Merkle inclusion \
            proof of the version's event, as `layerfs prove` prints it).

            Changes: a file's writes are committed as ONE event when it is closed or fsynced \
            (open with O_TRUNC + write + close is one event; a new file appears in the log at its \
            first commit); mkdir, rmdir, unlink, rename, symlink, chmod, chown, utimens and truncate \
            are one event each. A close or fsync that returns success means the change is durable. \
            The historical views are read-only (EROFS); hard links, device files, FIFOs and sockets \
            cannot be stored (EPERM); extended attributes are read-only provenance (ENOTSUP).

            The mount holds the store's writer lock: while mounted, `layerfs import` and `layerfs \
            seal` on the store fail, and a second mount of it is refused. With `-o ro` the store is \
            opened read-only instead (and can be mounted beside a writer). `default_permissions` is \
            always on: the kernel checks access against the owners and modes the store records. \
            Unmounting commits files still open and closes the store, which seals a block of the \
            events not yet sealed.

            With --replica, STORE is a replica filled by `layerfs receive`: the mount is read-only             and shows the history up to the replica's last accepted block (the present is that             block's state; @time, @block, @history and @similar work as on the primary). The replica             builds its own similarity index from its own log, in             /var/lib/layerfs/index/<store id>-replica-<12 hex digits>/ by default. Blocks received             after mounting show after a remount.

            Without -f the command returns once the mount is ready and the daemon logs to syslog; \
            with -f it stays in the foreground and logs on standard error. `fusermount3 -u MOUNTPOINT`, \
            `umount MOUNTPOINT`, SIGTERM or SIGINT end it cleanly. Other -o options (allow_other, \
            default_permissions, debug, ...) are passed to libfuse and the kernel.

            EXAMPLES:
              layerfs mount /srv/layer /mnt/layer
              ls /mnt/layer/@time/ && cat /mnt/layer/@time/2026-11-21T09:00Z/etc/hosts
              layerfs mount -f -o show_at,allow_other /srv/layer /mnt/layer
              fusermount3 -u /mnt/layer
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("An existing directory to mount on.", valueName: "mountpoint"))
    var mountPoint: String

    @Flag(name: .customShort("f"), help: "Stay in the foreground (log on standard error).")
    var foreground = false

    @Flag(help: "STORE is a replica (filled by `layerfs receive`): mount its last block, read-only.")
    var replica = false

    @Option(
        name: .customShort("o"),
        help: ArgumentHelp(
            "Mount options, comma-separated (show_at, ro, rw, index_dir=, embedder=, model_dir=, noindex, and libfuse's own).",
            valueName: "options"))
    var options: [String] = []

    @OptionGroup var global: GlobalOptions

    func run() throws {
        // Fork before anything starts a thread (opening the store, libfuse): only the child goes on.
        let readiness = foreground ? nil : try Daemon.detach()
        let level = global.level
        try global.run { context in
            var logger = context.logger
            if readiness != nil {
                logger = Logger(label: "layerfs") { SyslogLogHandler(label: $0, level: level) }
                logger.logLevel = level
            }
            var mountOptions = MountOptions(parsing: options)
            if replica {
                // A replica changes only by `layerfs receive`.
                mountOptions.readOnly = true
                if !mountOptions.fuseOptions.contains("ro") { mountOptions.fuseOptions.append("ro") }
            }
            // The absolute path: the daemon leaves its working directory, and /proc/mounts shows it.
            var storePath = self.store
            if let resolved = realpath(self.store, nil) {
                storePath = String(cString: resolved)
                free(resolved)
                if let elsewhere = FUSESession.mountPoint(ofStore: storePath) {
                    throw CLIError("store \(self.store) is already mounted on \(elsewhere) (unmount it first: fusermount3 -u \(elsewhere))", status: .locked)
                }
            }
            // Likewise the mount point: the daemon unmounts it by path after leaving its directory.
            var mountPath = mountPoint
            if let resolved = realpath(mountPoint, nil) {
                mountPath = String(cString: resolved)
                free(resolved)
            }
            // The default seal policy: every 1000 events, every hour, and when unmounted.
            let store: Store
            if replica {
                store = try StoreAccess.openReplica(storePath, logger: logger)
            } else {
                store = try StoreAccess.open(
                    storePath, mode: mountOptions.readOnly ? .readOnly : .readWrite, sealPolicy: SealPolicy(), logger: logger)
            }
            // The similarity index (derived data outside the store), kept up to date on a thread
            // of its own; a problem with it never stops the mount (/@similar/.status says why).
            var similarity: SimilarityIndex? = nil
            if !mountOptions.noIndex {
                do {
                    let embedder = try Embedders.make(mountOptions.embedder, modelDirectory: mountOptions.modelDirectory)
                    let index = SimilarityIndex(
                        store: store,
                        directory: mountOptions.indexDirectory
                            ?? (replica
                                ? SimilarityIndex.defaultDirectory(forReplica: storePath, of: store)
                                : SimilarityIndex.defaultDirectory(for: store)),
                        embedder: embedder, logger: logger)
                    similarity = index
                } catch {
                    throw CLIError("-o embedder=\(mountOptions.embedder): \(error)", status: .usage)
                }
            }
            let session: FUSESession
            do throws(MountError) {
                session = try FUSESession(
                    store: store, mountPoint: mountPath, options: mountOptions, similarity: similarity, logger: logger)
            } catch {
                let status: ExitStatus =
                    switch error.kind {
                    case .mountPoint: .noInput
                    case .busy: .locked
                    case .fuse: .failure
                    }
                throw CLIError(error.description, status: status)
            }
            if let readiness { Daemon.ready(readiness) }
            if let similarity {
                do {
                    try similarity.lock()
                    // Save at most every 30 s while busy (and a quarter of the index at a time):
                    // the graph is rewritten whole on each save.
                    similarity.saveInterval = 30
                    similarity.startBackground()
                } catch let error as SimilarityError where error.kind == .locked {
                    logger.warning("similarity index: \(error); serving it as it is, without updating it")
                    similarity.load(readOnly: true)
                } catch {
                    logger.error("similarity index: \(error); /@similar is unavailable")
                    similarity.markUnavailable("\(error)")
                }
            }
            session.run()
            similarity?.stop()
            try? store.close()
        }
    }
}

/// Detaching the mount from the terminal, reporting setup errors first.
///
/// The parent forks at once and waits on a pipe. The child does the work (opens the store, mounts)
/// with the terminal still as its stderr, so setup errors print as usual; once mounted it writes
/// one byte on the pipe and drops its stdio. The parent exits 0 on that byte, or, if the pipe
/// closes without it (the child failed), with the child's exit status.
enum Daemon {
    /// In the child: the pipe's write end. The parent never returns from this.
    static func detach() throws(CLIError) -> Int32 {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw CLIError("cannot create a pipe: \(String(cString: strerror(errno)))", status: .ioError)
        }
        let pid = fork()
        guard pid >= 0 else {
            throw CLIError("cannot fork: \(String(cString: strerror(errno)))", status: .ioError)
        }
        if pid > 0 {
            close(fds[1])
            var byte: UInt8 = 0
            var n: Int
            repeat { n = read(fds[0], &byte, 1) } while n < 0 && errno == EINTR
            if n == 1 { exit(0) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
            exit(status & 0x7f == 0 ? (status >> 8) & 0xff : ExitStatus.failure.rawValue)
        }
        close(fds[0])
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        closeInheritedDescriptors(keeping: fds[1])
        setsid()
        return fds[1]
    }

    /// Closes every descriptor above stderr except `keep`. A daemon must not hold what its starter
    /// left open: a pipe or socket held by the daemon keeps whoever waits on its other end waiting
    /// (Foundation's `Process` watches such a socket to learn that its child exited).
    static func closeInheritedDescriptors(keeping keep: Int32) {
        guard let directory = opendir("/proc/self/fd") else { return }
        var open: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if let fd = Int32(name) { open.append(fd) }
        }
        let own = dirfd(directory)
        closedir(directory)
        for fd in open where fd > STDERR_FILENO && fd != keep && fd != own { close(fd) }
    }

    /// In the child, once mounted: tell the parent, leave the terminal and the working directory.
    static func ready(_ fd: Int32) {
        var byte = UInt8(ascii: "R")
        _ = write(fd, &byte, 1)
        close(fd)
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for target in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] { dup2(null, target) }
            if null > STDERR_FILENO { close(null) }
        }
        _ = chdir("/")
    }
}
