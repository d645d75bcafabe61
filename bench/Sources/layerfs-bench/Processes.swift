// Child processes: external tools (mkfs.btrfs, mount...) and the bench binary itself, plus the
// signal handling that makes a Ctrl-C or a kill still unmount what we mounted.
//
// The parent process never runs a measurement that touches a loop-mounted file system: it mounts,
// runs the measurement in a child (this binary, a hidden subcommand), and unmounts. A crash of the
// child therefore cannot skip the teardown; a signal to the parent is forwarded to the child, and
// the parent tears down once the child is gone.

#if canImport(Glibc)
import Glibc
#endif

/// The child currently running (0: none). Read by the signal handler.
nonisolated(unsafe) var currentChild: pid_t = 0
/// The first termination signal caught (0: none).
nonisolated(unsafe) var caughtSignal: Int32 = 0

let terminationSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

/// Installs handlers that remember the signal and forward it to the running child. Without
/// SA_RESTART, so a blocking waitpid returns and the parent can clean up.
func installSignalForwarding() {
    for sig in terminationSignals {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            if caughtSignal == 0 { caughtSignal = sig }
            let child = currentChild
            if child > 0 { kill(child, sig) }
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(sig, &action, nil)
    }
}

/// Exits the way the caught signal would have (after cleanup).
func exitIfSignalled() {
    let sig = caughtSignal
    guard sig != 0 else { return }
    print("\n  interrupted by signal \(sig): cleaned up, exiting")
    flushOutput()
    exit(128 + sig)
}

/// The path of this executable.
func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, 4095)
    guard n > 0 else { return CommandLine.arguments[0] }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Directories searched for tools besides $PATH (sbin is often missing).
private let toolDirectories = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

func findTool(_ name: String) -> String? {
    let path = getenv("PATH").map { String(cString: $0) } ?? ""
    let dirs = path.split(separator: ":").map(String.init) + toolDirectories
    return dirs.map { $0 + "/" + name }.first { access($0, X_OK) == 0 }
}

struct ChildResult {
    var status: Int32  // exit status, or 128 + signal
    var output: String
    var ok: Bool { status == 0 }
}

/// Spawns `executable` with `arguments`. With `capture`, stdout and stderr go to a pipe and are
/// returned; otherwise the child shares our stdout/stderr (its tables print in place).
/// Tools run in a process group of their own, so a Ctrl-C at the terminal does not interrupt a
/// teardown step (umount, losetup) half way; the bench's own children share our group and also
/// get every signal we catch forwarded.
func spawn(_ executable: String, _ arguments: [String], capture: Bool, tool: Bool = false) throws -> ChildResult {
    flushOutput()
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    if tool {
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
    }
    var fileActions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fileActions)
    defer { posix_spawn_file_actions_destroy(&fileActions) }
    var pipeFDs: [Int32] = [-1, -1]
    if capture {
        guard pipe(&pipeFDs) == 0 else { throw fail("pipe: \(errnoText())") }
        posix_spawn_file_actions_adddup2(&fileActions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&fileActions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&fileActions, pipeFDs[0])
        posix_spawn_file_actions_addclose(&fileActions, pipeFDs[1])
    }
    posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var env: [UnsafeMutablePointer<CChar>?] = []
    var e = environ
    while let p = e.pointee { env.append(strdup(p)); e += 1 }
    env.append(strdup("LC_ALL=C"))
    env.append(nil)
    defer { for p in env { free(p) } }

    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &fileActions, &attributes, argv, env)
    if capture { close(pipeFDs[1]) }
    guard rc == 0 else {
        if capture { close(pipeFDs[0]) }
        throw fail("cannot run \(executable): \(errnoText(rc))")
    }
    if !tool { currentChild = pid }
    var output: [UInt8] = []
    if capture {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, 65536) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output.append(contentsOf: buffer[0..<n])
        }
        close(pipeFDs[0])
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { break }
    }
    if !tool { currentChild = 0 }
    // WIFEXITED / WEXITSTATUS / WTERMSIG are macros: decode by hand.
    let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ChildResult(status: exitCode, output: String(decoding: output, as: UTF8.self))
}

/// Runs a tool and throws with its output if it fails.
@discardableResult
func runTool(_ name: String, _ arguments: [String]) throws -> String {
    guard let path = findTool(name) else { throw fail("\(name) not found") }
    let r = try spawn(path, arguments, capture: true, tool: true)
    guard r.ok else {
        let text = r.output.split(separator: "\n").prefix(3).joined(separator: " / ")
        throw fail("`\(([name] + arguments).joined(separator: " "))` failed (status \(r.status)): \(text)")
    }
    return r.output
}

/// Runs this binary with a hidden subcommand; its output goes straight to ours.
func runSelf(_ arguments: [String]) throws -> Int32 {
    try spawn(selfExecutable(), arguments, capture: false).status
}

/// Runs this binary with a hidden subcommand and returns its output.
func runSelfCapturing(_ arguments: [String]) throws -> ChildResult {
    try spawn(selfExecutable(), arguments, capture: true)
}

/// Removes a directory tree we made (refuses anything outside a bench temp dir).
func removeTree(_ path: String) {
    guard path.contains("/layerfs-bench-"), !path.hasSuffix("/") else { return }
    _ = try? runTool("rm", ["-rf", "--one-file-system", path])
}
