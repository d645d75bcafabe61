#if canImport(Glibc)
import Glibc
#endif

/// Buffered writes to a file descriptor (standard output): binary safe, one `write(2)` per 64 KiB
/// instead of one per line. Flushed when full, by `flush()`, and when released.
final class Output {
    let fd: Int32
    private var buffer: [UInt8] = []
    private static let capacity = 1 << 16

    init(fd: Int32 = STDOUT_FILENO) {
        self.fd = fd
        buffer.reserveCapacity(Output.capacity)
    }

    deinit { flush() }

    func write(_ bytes: some Collection<UInt8>) {
        if buffer.count + bytes.count > Output.capacity { flush() }
        if bytes.count >= Output.capacity {
            Output.writeAll(fd, Array(bytes))
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Writes `text` followed by a newline.
    func line(_ text: String = "") {
        write(text.utf8)
        buffer.append(UInt8(ascii: "\n"))
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        Output.writeAll(fd, buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes everything, retrying EINTR and short writes. A write that fails otherwise (EPIPE
    /// with SIGPIPE ignored, EIO) ends the output silently: there is nowhere left to report it.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                done += n
            }
        }
    }
}

/// Unbuffered lines on standard error: errors, warnings and the progress bar.
enum StandardError {
    static func line(_ text: String) {
        Output.writeAll(STDERR_FILENO, Array((text + "\n").utf8))
    }

    /// `layerfs: <message>`.
    static func error(_ message: String) { line("layerfs: " + message) }

    /// `layerfs: warning: <message>`.
    static func warning(_ message: String) { line("layerfs: warning: " + message) }

    static var isTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}
