#if canImport(Glibc)
import Glibc
#endif

/// One writer per store: an exclusive `flock` on `metadata/writer.lock`, which also holds a line
/// naming the holder (pid, process, host, since) so a second writer's error can say who it is.
/// The line is emptied on a clean close; a non-empty line found by a new writer means the last
/// one did not close cleanly (crash, kill -9, power loss).
final class WriterLock: @unchecked Sendable {
    let path: String
    private let fd: Int32
    /// The holder line left by a writer that did not close cleanly, if any.
    let previousHolder: String?

    init(path: String) throws(LayerError) {
        self.path = path
        let fd = try FileSystem.open(path, O_RDWR | O_CREAT, mode: 0o644)
        // A reader probing the lock holds it shared for microseconds; retry briefly before failing.
        var attempts = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            attempts += 1
            if e == EWOULDBLOCK && attempts < 10 {
                usleep(20_000)
                continue
            }
            let holder = (try? WriterLock.holderLine(fd: fd, path: path)) ?? ""
            FileSystem.close(fd)
            if e == EWOULDBLOCK {
                throw LayerError(
                    .locked,
                    "the store is already open for writing by \(holder.isEmpty ? "another process" : holder)",
                    path: path)
            }
            throw .system("flock", errno: e, path: path)
        }
        self.fd = fd
        let previous = (try? WriterLock.holderLine(fd: fd, path: path)) ?? ""
        previousHolder = previous.isEmpty ? nil : previous
        var hostnameBuffer = [CChar](repeating: 0, count: 256)
        gethostname(&hostnameBuffer, 255)
        let hostname = String(decoding: hostnameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let me = Provenance.currentProcess()
        let line = "pid \(me.pid) (\(me.process)) on \(hostname) since \(Timestamp.now())\n"
        do {
            try FileSystem.truncate(fd, to: 0, path: path)
            _ = lseek(fd, 0, SEEK_SET)
            try FileSystem.writeAll(fd, Array(line.utf8), path: path)
            try FileSystem.dataSync(fd, path: path)
        } catch {
            FileSystem.close(fd)
            throw error
        }
    }

    private static func holderLine(fd: Int32, path: String) throws(LayerError) -> String {
        let size = try FileSystem.size(fd, path: path)
        guard size > 0 else { return "" }
        let bytes = try FileSystem.preadAll(fd, count: Int(min(size, 512)), offset: 0, path: path)
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }

    /// Whether some process holds the lock right now (for read-only opens).
    static func isHeld(path: String) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { FileSystem.close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }

    /// The holder line, read without locking (for status).
    static func holder(path: String) -> String? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { FileSystem.close(fd) }
        let line = (try? holderLine(fd: fd, path: path)) ?? ""
        return line.isEmpty ? nil : line
    }

    /// Marks a clean close (empties the holder line) and releases the lock.
    func release(clean: Bool) {
        if clean {
            _ = ftruncate(fd, 0)
            _ = fdatasync(fd)
        }
        flock(fd, LOCK_UN)
        FileSystem.close(fd)
    }
}
