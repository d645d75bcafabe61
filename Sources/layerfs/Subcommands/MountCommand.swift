import ArgumentParser
import LayerCore
import LayerFS
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs mount STORE MOUNTPOINT [-f] [-o OPTIONS]`: serve a store through FUSE.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a store (read-only for now): the present, @time, @block and @history.",
        discussion: """
            Serves the store through FUSE on MOUNTPOINT, an existing empty directory:

              MOUNTPOINT/                     the present (the store's head when mounted)
              MOUNTPOINT/@time/<time>/        the tree as of <time>: any form `--at` accepts, or latest;
                                              `ls @time` lists the canonical time of every event
              MOUNTPOINT/@block/<n>/          the tree as sealed in block n (or latest)
              MOUNTPOINT/@history/<path>/     every version of one element, one file per change named
                                              by its canonical time; a deletion is `<time>.deleted`

            The @ names are not listed by `ls` of the root (so rsync, find and du stay in the present) \
            unless mounted with `-o show_at`; they always resolve by name. Files in every view carry \
            their provenance as extended attributes: `getfattr -d FILE` shows user.layerfs.seq, .hash, \
            .time, .uid, .gid, .pid, .process and .block (once sealed).

            This version opens the store READ-ONLY, so it can run beside a writer (`layerfs import`), \
            and shows the store as it was when mounted; the whole mount is read-only and every change \
            fails with EROFS (a read-write present comes next).

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

    @Option(
        name: .customShort("o"),
        help: ArgumentHelp("Mount options, comma-separated (show_at, and libfuse's own).", valueName: "options"))
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
            let mountOptions = MountOptions(parsing: options)
            if let resolved = realpath(self.store, nil) {
                defer { free(resolved) }
                if let elsewhere = FUSESession.mountPoint(ofStore: String(cString: resolved)) {
                    throw CLIError("store \(self.store) is already mounted on \(elsewhere) (unmount it first: fusermount3 -u \(elsewhere))", status: .locked)
                }
            }
            // The mount is the long-running writer: it seals by the default policy (every 1000
            // events, every hour, and at close, FORMAT.md §8.3). StoreAccess's default is manual,
            // which left every change of a mount unsealed.
            // By its absolute, symlink-free path: the daemon leaves the working directory for /
            // once mounted, and the store reaches its files by path (blobs, the block head); and
            // the path is the mount's fsname, by which the "already mounted" check above finds it.
            // (`layerfs mount ./store` read and wrote blobs relative to / and failed with EIO and
            // ENOENT, and a second mount got the writer-lock error instead.)
            let store = try StoreAccess.open(
                StoreAccess.absolute(self.store), mode: mountOptions.readOnly ? .readOnly : .readWrite,
                sealPolicy: SealPolicy(), logger: logger)
            let session: FUSESession
            do throws(MountError) {
                session = try FUSESession(
                    store: store, mountPoint: mountPoint, options: mountOptions, logger: logger)
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
            session.run()
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
