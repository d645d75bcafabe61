#if canImport(Glibc)
import Glibc
#endif

/// Something wrong with a store: the first bad event (by sequence number) or block, and why.
public struct Damage: Error, Sendable, CustomStringConvertible {
    public var sequence: UInt64?
    public var block: UInt64?
    public var message: String

    public var description: String {
        if let sequence { return "event \(sequence): \(message)" }
        if let block { return "block \(block): \(message)" }
        return message
    }
}

/// Reads `events.jsonl` front to back, checking each line (canonical form, hash, sequence,
/// chain, time order) and handing good events to a visitor, which may reject them too (an event
/// that is not a valid change, a bad blob, a block whose root does not match). Inline content is
/// fully checked but not handed over: the visitor's events carry `.inline([])` (their `size` is
/// right); `.object` content is handed over as it is.
///
/// At the end of the valid lines, the scan classifies what remains:
/// - nothing: a clean log;
/// - a *tail*: bytes after the last newline (a torn append), or complete lines none of which
///   begins like an event line, `{"seq":` (garbage, NUL fill after a crash). The writer moves a
///   tail aside;
/// - *damage*: a line that begins like an event but fails a check, or any bad line followed by
///   one that begins like an event (something in the middle was changed). Named by sequence number.
struct LogScanner {
    struct Outcome {
        /// Number of bytes of good, newline-terminated lines.
        var validLength: UInt64 = 0
        /// Sequence number and hash of the last good event (nil if none).
        var last: (seq: UInt64, hash: Digest)?
        /// Range of trailing bytes that are not events (torn write or garbage).
        var tail: Range<UInt64>?
        var damage: Damage?
    }

    /// Scans `bytes`; `visit(event, offset, lineLength)` may throw a Damage to stop the scan.
    /// With `through`, the scan ends after that event: what follows is neither read nor judged.
    static func scan(
        _ bytes: UnsafeRawBufferPointer, through limit: UInt64? = nil,
        visit: (Event, UInt64, Int) throws(Damage) -> Void
    ) -> Outcome {
        var outcome = Outcome()
        var offset = 0
        var expected: UInt64 = 0
        var previousHash = Digest.zero
        var previousTime = Int64.min
        let size = bytes.count
        // Inline content is checked but not copied out: the visitor needs only `size`.
        let decoder = CanonicalLineDecoder(inline: .validateOnly)

        while offset < size {
            guard let newline = indexOfNewline(bytes, from: offset) else {
                outcome.tail = UInt64(offset)..<UInt64(size)
                break
            }
            let line = UnsafeRawBufferPointer(rebasing: bytes[offset..<newline])
            var partial: Event?
            let result = decoder.decode(line: line, partial: &partial)
            let event: Event
            switch result {
            case .failure(.malformed(let why)):
                // FORMAT.md §10: a complete line that begins like an event line is never a tail.
                if looksLikeEvent(line) {
                    outcome.damage = Damage(
                        sequence: expected, message: "line \(expected + 1) (byte \(offset)) is not a valid event (\(why))")
                } else if containsEventLine(bytes, from: newline + 1) {
                    outcome.damage = Damage(
                        sequence: expected,
                        message: "line \(expected + 1) (byte \(offset)) is not a valid event (\(why)), and event lines follow it")
                } else {
                    outcome.tail = UInt64(offset)..<UInt64(size)
                }
                return outcome
            case .failure(.nonCanonical):
                outcome.damage = Damage(
                    sequence: expected,
                    message: "the line is not the canonical encoding of its own fields (edited by hand?)")
                return outcome
            case .failure(.hashMismatch(let computed)):
                outcome.damage = Damage(
                    sequence: expected,
                    message: "hash mismatch: the line says \(partial?.hash.hex ?? "?") but its fields hash to \(computed.hex)")
                return outcome
            case .success(let e):
                event = e
            }
            if event.seq != expected {
                let why =
                    event.seq > expected
                    ? "event \(expected) is missing: the next line holds event \(event.seq) (deleted line?)"
                    : "event \(event.seq) appears where event \(expected) belongs (duplicated or reordered line)"
                outcome.damage = Damage(sequence: expected, message: why)
                return outcome
            }
            if event.previousHash != previousHash {
                outcome.damage = Damage(
                    sequence: expected,
                    message: "broken chain: prev is \(event.previousHash.hex), the hash of event \(expected == 0 ? "-" : String(expected - 1)) is \(previousHash.hex)")
                return outcome
            }
            if event.time.nanoseconds < previousTime {
                outcome.damage = Damage(sequence: expected, message: "time \(event.time) is earlier than the previous event's")
                return outcome
            }
            do {
                try visit(event, UInt64(offset), newline + 1 - offset)
            } catch {
                outcome.damage = error
                return outcome
            }
            previousHash = event.hash
            previousTime = event.time.nanoseconds
            outcome.last = (event.seq, event.hash)
            outcome.validLength = UInt64(newline + 1)
            expected += 1
            offset = newline + 1
            if let limit, event.seq >= limit { break }
        }
        return outcome
    }

    private static func indexOfNewline(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        let base = bytes.baseAddress! + start
        guard let hit = memchr(base, 0x0A, bytes.count - start) else { return nil }
        return start + (UnsafeRawPointer(hit) - base)
    }

    /// The 7 bytes every event line begins with (FORMAT.md §10).
    private static let eventLinePrefix: [UInt8] = Array(#"{"seq":"#.utf8)

    static func looksLikeEvent(_ line: UnsafeRawBufferPointer) -> Bool {
        line.count >= eventLinePrefix.count && line.prefix(eventLinePrefix.count).elementsEqual(eventLinePrefix)
    }

    /// Whether any complete line from `start` on begins like an event line.
    private static func containsEventLine(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool {
        var offset = start
        while offset < bytes.count, let newline = indexOfNewline(bytes, from: offset) {
            if looksLikeEvent(UnsafeRawBufferPointer(rebasing: bytes[offset..<newline])) { return true }
            offset = newline + 1
        }
        return false
    }
}

/// A read-only memory map of a whole file (empty files map to an empty buffer).
/// The corresponding C functions are `mmap` and `munmap`.
final class MappedFile {
    let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    init(path: String) throws(LayerError) {
        let fd = try FileSystem.open(path, O_RDONLY)
        defer { FileSystem.close(fd) }
        let length = Int(try FileSystem.size(fd, path: path))
        if length == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .system("mmap", errno: errno, path: path)
        }
        madvise(p, length, MADV_SEQUENTIAL)
        bytes = UnsafeRawBufferPointer(start: p, count: length)
        mapped = true
    }

    deinit {
        if mapped, let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
