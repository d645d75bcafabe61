#if canImport(Glibc)
import Glibc
#endif

/// Files a command writes whole (`prove --output`, `keygen`'s keys): created with `mode`, written
/// with short writes and EINTR retried, synced. Errors name the file: 73 when it cannot be created
/// (or, with `exclusive`, already exists), 74 when writing fails.
enum OutputFile {
    static func write(_ path: String, _ bytes: [UInt8], mode: mode_t, exclusive: Bool) throws(CLIError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode)
        guard fd >= 0 else { throw failure(path, .cannotCreate) }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
        // fchmod: the umask must not widen or narrow what the caller asked for (a key's 0600).
        guard written, fchmod(fd, mode) == 0, fsync(fd) == 0 else { throw failure(path, .ioError) }
    }

    private static func failure(_ path: String, _ status: ExitStatus) -> CLIError {
        CLIError("\(Describe.text(path)): \(String(cString: strerror(errno)))", status: status)
    }
}
