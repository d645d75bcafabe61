// Small tools every benchmark uses: clocks, statistics, tables, a seeded RNG, threads, /proc.

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

// MARK: Clock

/// Monotonic nanoseconds (CLOCK_MONOTONIC).
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

// MARK: Statistics

/// Order statistics of a sample of durations in nanoseconds.
struct Summary {
    let count: Int
    let median: Double
    let p99: Double
    let max: Double
    let mean: Double

    /// Nearest-rank percentiles.
    init(_ samples: [UInt64]) {
        let s = samples.sorted()
        count = s.count
        func rank(_ p: Double) -> Double {
            guard !s.isEmpty else { return .nan }
            let i = Swift.max(0, Swift.min(s.count - 1, Int((p / 100 * Double(s.count)).rounded(.up)) - 1))
            return Double(s[i])
        }
        median = rank(50)
        p99 = rank(99)
        max = s.last.map { Double($0) } ?? .nan
        mean = s.isEmpty ? .nan : Double(s.reduce(0, &+)) / Double(s.count)
    }
}

// MARK: Formatting

/// `value` with `decimals` digits after the point (no Foundation).
func fixed(_ value: Double, _ decimals: Int = 1) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let r = (abs(value) * scale).rounded()
    let whole = UInt64(r / scale)
    let frac = UInt64(r - Double(whole) * scale)
    var s = String(whole)
    if decimals > 0 {
        var f = String(frac)
        while f.count < decimals { f = "0" + f }
        s += "." + f
    }
    return negative && r != 0 ? "-" + s : s
}

/// Microseconds from nanoseconds.
func us(_ ns: Double, _ decimals: Int = 1) -> String { fixed(ns / 1000, decimals) }
func ms(_ ns: Double, _ decimals: Int = 2) -> String { fixed(ns / 1_000_000, decimals) }

func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? fixed(a / b, 2) + "x" : "-" }

/// Thousands separators, for counts.
func grouped(_ n: Int) -> String {
    let s = String(n)
    var out = ""
    for (i, c) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

func bytesText(_ n: Double) -> String {
    let k = 1024.0
    if n >= k * k * k { return fixed(n / (k * k * k), 2) + " GiB" }
    if n >= k * k { return fixed(n / (k * k), 1) + " MiB" }
    if n >= k { return fixed(n / k, 1) + " KiB" }
    return fixed(n, 0) + " B"
}

/// "MET" / "MISSED" for a target line.
func verdict(_ ok: Bool) -> String { ok ? "MET" : "MISSED" }

/// A plain-text table: first column left-aligned, the others right-aligned.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: [String]) { self.headers = headers }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render(indent: String = "  ") -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, w) in widths.enumerated() {
                let cell = i < cells.count ? cells[i] : ""
                let pad = String(repeating: " ", count: max(0, w - cell.count))
                parts.append(i == 0 ? cell + pad : pad + cell)
            }
            var s = indent + parts.joined(separator: "  ")
            while s.last == " " { s.removeLast() }
            return s
        }
        var out = [line(headers)]
        out.append(indent + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
        out.append(contentsOf: rows.map(line))
        return out.joined(separator: "\n")
    }

    func print() {
        Swift.print(render())
        flushOutput()
    }
}

func flushOutput() { fflush(nil) }

func heading(_ text: String) {
    print("")
    print("== \(text) ==")
    flushOutput()
}

func note(_ text: String) {
    print("  " + text)
    flushOutput()
}

// MARK: Random numbers

/// SplitMix64: small, fast, seedable; good enough to pick paths and sizes.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: Threads

private final class ThreadBody: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Starts a real OS thread (writers block in fdatasync: a thread pool sized to the cores would
/// cap the concurrency this measures).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
        body.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

func joinThread(_ thread: pthread_t) {
    pthread_join(thread, nil)
}

/// An end time handed to writer threads; written before and read after a StartLine barrier.
final class Deadline: @unchecked Sendable {
    var value: UInt64 = 0
}

/// A reusable start line: `count` parties wait, then all go at once.
final class StartLine: @unchecked Sendable {
    private let barrier = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    init(parties: Int) { pthread_barrier_init(barrier, nil, UInt32(parties)) }
    func wait() { pthread_barrier_wait(barrier) }
    deinit {
        pthread_barrier_destroy(barrier)
        barrier.deallocate()
    }
}

// MARK: /proc and the file system

/// A field of /proc/self/status in bytes (VmRSS, VmHWM...).
func procStatusBytes(_ field: String) -> UInt64 {
    guard let text = try? readTextFile("/proc/self/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let digits = line.dropFirst(field.count + 1).filter { $0.isNumber }
        return (UInt64(String(digits)) ?? 0) * 1024
    }
    return 0
}

enum BenchError: Error, CustomStringConvertible {
    case message(String)
    var description: String {
        switch self { case .message(let m): return m }
    }
}

func fail(_ message: String) -> BenchError { .message(message) }

func readTextFile(_ path: String) throws -> String {
    String(decoding: try readBinaryFile(path), as: UTF8.self)
}

func readBinaryFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw fail("open \(path): \(errnoText())") }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
        if n < 0 {
            if errno == EINTR { continue }
            throw fail("read \(path): \(errnoText())")
        }
        if n == 0 { break }
        out.append(contentsOf: buffer[0..<n])
    }
    return out
}

func errnoText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

func fileSize(_ path: String) -> UInt64 {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
}

func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// A fresh directory `<base>/<prefix>XXXXXX`.
func makeTemporaryDirectory(in base: String, prefix: String) throws -> String {
    var template = Array((base + "/" + prefix + "XXXXXX").utf8CString)
    let ok = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
    guard ok else { throw fail("mkdtemp in \(base): \(errnoText())") }
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The file system type of `path`: the /proc/mounts entry with the longest mount point that
/// contains it (after resolving symlinks).
func fileSystemType(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return "?" }
    let real = String(cString: resolved)
    free(resolved)
    guard let text = try? readTextFile("/proc/mounts") else { return "?" }
    var best = (length: -1, type: "?")
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count > 2 else { continue }
        let mount = String(f[1]).replacingOctal()
        let inside = mount == "/" || real == mount || real.hasPrefix(mount + "/")
        if inside && mount.count > best.length { best = (mount.count, String(f[2])) }
    }
    return best.type
}

extension String {
    /// Decodes the `\040`-style escapes of /proc/mounts.
    func replacingOctal() -> String {
        let utf8 = Array(self.utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                let v = UInt8(String(decoding: utf8[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(v)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Opens `path` for appending (created), failing loudly.
func openAppend(_ path: String) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw fail("open \(path): \(errnoText())") }
    return fd
}

func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw fail("write: \(errnoText())")
        }
        done += n
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try writeAll(fd, $0) }
}

/// The provenance every benchmark commit carries.
let benchProvenance = Provenance(uid: 0, gid: 0, pid: getpid(), process: "layerfs-bench")

/// Store options whose logger only reports warnings and errors (the store logs every seal and
/// creation at info level, which would drown the tables).
func quietOptions(_ policy: SealPolicy) -> Store.Options {
    var options = Store.Options(sealPolicy: policy)
    options.logger.logLevel = .warning
    return options
}

/// Store.create without the info-level "created store" line.
@discardableResult
func createStore(at path: String) throws -> String {
    try Store.create(at: path, by: benchProvenance, logger: quietOptions(.manual).logger)
}
