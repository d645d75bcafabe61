#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A child process started with `posix_spawn`, for the one job libbtrfsutil cannot do: btrfs
/// send and receive (btrfs-progs' `btrfs send` / `btrfs receive`).
///
/// The child gets exactly three descriptors: 0, 1 and 2, each either a pipe to us, a descriptor we
/// pass, or /dev/null. Everything we hold is opened close-on-exec, so nothing else leaks into it.
final class Subprocess {
    enum Stream {
        /// A new pipe: our end is `input` (we write what the child reads) or `output` (we read).
        case pipe
        /// One of our descriptors, duplicated into the child (we keep ours).
        case descriptor(Int32)
        case null
    }

    let pid: pid_t
    let executable: String
    let arguments: [String]
    /// Our end of the child's standard input, when it is `.pipe` (-1 once closed).
    private(set) var input: Int32 = -1
    /// Our end of the child's standard output, when it is `.pipe` (-1 once closed).
    private(set) var output: Int32 = -1
    private var exitStatus: Int32?

    /// Where an executable named `name` is: the PATH, then /usr/sbin and /sbin (btrfs lives in
    /// /usr/bin on Debian, but root's tools are often only in sbin elsewhere).
    static func find(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    init(_ executable: String, _ arguments: [String], stdin: Stream, stdout: Stream, stderr: Stream) throws(LayerError) {
        self.executable = executable
        self.arguments = arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var childEnds: [Int32] = []
        var ourEnds: [Int32: Int32] = [:]  // child fd -> our end
        defer { for fd in childEnds { Glibc.close(fd) } }

        var nullFD: Int32 = -1
        defer { if nullFD >= 0 { Glibc.close(nullFD) } }
        for (target, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch stream {
            case .pipe:
                var ends: [Int32] = [-1, -1]
                // pipe2(O_CLOEXEC) is not visible to Swift without _GNU_SOURCE; set the flag after.
                guard pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0 else {
                    let e = errno
                    for fd in ourEnds.values { Glibc.close(fd) }
                    throw LayerError.system("pipe2", errno: e, path: executable)
                }
                // stdin: the child reads ends[0]; stdout/stderr: the child writes ends[1].
                let (child, ours) = target == 0 ? (ends[0], ends[1]) : (ends[1], ends[0])
                childEnds.append(child)
                ourEnds[target] = ours
                posix_spawn_file_actions_adddup2(&actions, child, target)
            case .descriptor(let fd):
                posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .null:
                if nullFD < 0 { nullFD = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC) }
                posix_spawn_file_actions_adddup2(&actions, nullFD, target)
            }
        }

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // The child starts with no signal blocked and default dispositions: the caller may block
        // signals on its threads or ignore SIGPIPE, and btrfs must die of SIGTERM and of EPIPE.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            for fd in ourEnds.values { Glibc.close(fd) }
            throw LayerError.system("posix_spawn", errno: result, path: executable)
        }
        pid = child
        input = ourEnds[0] ?? -1
        output = ourEnds[1] ?? -1
        if let err = ourEnds[2] { Glibc.close(err) }  // not used: stderr goes to a descriptor or /dev/null
    }

    deinit {
        closeInput()
        closeOutput()
        if exitStatus == nil {
            Glibc.kill(pid, SIGKILL)
            _ = try? wait()
        }
    }

    func closeInput() {
        if input >= 0 { Glibc.close(input); input = -1 }
    }

    func closeOutput() {
        if output >= 0 { Glibc.close(output); output = -1 }
    }

    /// Waits for the child; its exit code, or 128 + the signal that ended it.
    @discardableResult
    func wait() throws(LayerError) -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw LayerError.system("waitpid", errno: errno, path: executable) }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        exitStatus = code
        return code
    }

    /// Ends the child at once (it is only ever stopped this way when its work is abandoned).
    func kill() {
        closeInput()
        if exitStatus == nil { Glibc.kill(pid, SIGKILL) }
    }

    /// `btrfs send ...` as the user would type it, for messages.
    var commandLine: String { ([StorePath.name(of: executable)] + arguments).joined(separator: " ") }
}
