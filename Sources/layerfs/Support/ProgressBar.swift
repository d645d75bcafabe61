import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar on standard error, redrawn in place:
///
///     verifying [##############..............]  48%  120.3 MiB of 250.0 MiB
///
/// Only on a terminal: `ProgressBar.onTerminal(...)` is nil when stderr is not a tty, so pipes,
/// logs and CI output get nothing. Redraws at most ten times a second; `finish()` erases the line.
/// Thread safe: LayerCore may report from any thread.
final class ProgressBar: Sendable {
    private struct State {
        var lastDraw: Int64 = 0
        var lastPercent = -1
        var drawn = false
        var finished = false
    }

    let label: String
    private let state = Mutex(State())

    private init(label: String) { self.label = label }

    static func onTerminal(_ label: String) -> ProgressBar? {
        StandardError.isTerminal ? ProgressBar(label: label) : nil
    }

    /// Draws `fraction` (0...1) with an optional detail text after the percentage.
    func update(_ fraction: Double, detail: String = "") {
        let now = ProgressBar.monotonicMilliseconds()
        let percent = Int((max(0, min(1, fraction)) * 100).rounded(.down))
        let line: String? = state.withLock { s in
            guard !s.finished else { return nil }
            guard percent != s.lastPercent || now - s.lastDraw >= 100 else { return nil }
            guard now - s.lastDraw >= 100 || percent == 100 else { return nil }
            s.lastDraw = now
            s.lastPercent = percent
            s.drawn = true
            return render(fraction: fraction, percent: percent, detail: detail)
        }
        if let line { Output.writeAll(STDERR_FILENO, Array(line.utf8)) }
    }

    /// A counter without a known total (e.g. while scanning).
    func spin(_ detail: String) {
        let now = ProgressBar.monotonicMilliseconds()
        let line: String? = state.withLock { s in
            guard !s.finished, now - s.lastDraw >= 100 else { return nil }
            s.lastDraw = now
            s.drawn = true
            return "\r\u{1B}[K\(label) \(detail)"
        }
        if let line { Output.writeAll(STDERR_FILENO, Array(line.utf8)) }
    }

    /// Erases the bar (so what follows starts on a clean line).
    func finish() {
        let erase = state.withLock { s -> Bool in
            defer { s.finished = true }
            return s.drawn && !s.finished
        }
        if erase { Output.writeAll(STDERR_FILENO, Array("\r\u{1B}[K".utf8)) }
    }

    private func render(fraction: Double, percent: Int, detail: String) -> String {
        let columns = ProgressBar.terminalColumns()
        let suffix = String(repeating: " ", count: max(0, 4 - String(percent).count)) + "\(percent)%"
            + (detail.isEmpty ? "" : "  " + detail)
        let room = columns - label.count - suffix.count - 4
        let width = max(10, min(40, room))
        let filled = Int((Double(width) * max(0, min(1, fraction))).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var line = "\(label) [\(bar)]\(suffix)"
        if line.count > columns - 1 { line = String(line.prefix(max(1, columns - 1))) }
        return "\r\u{1B}[K" + line
    }

    private static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    private static func monotonicMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// `120.3 MiB`: short sizes for the progress line.
func shortSize(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(bytes) B" }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}
