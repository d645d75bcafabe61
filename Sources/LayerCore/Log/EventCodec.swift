import COpenSSL

/// Encodes events to their canonical JSON line and decodes lines back, strictly.
///
/// The canonical bytes of an event (docs/FORMAT.md, "Canonical encoding") are a JSON object with
/// the event's fields, `hash` excluded, in the fixed order of `EventCodec.keyOrder`, no whitespace,
/// strings escaped as in RFC 8785 §3.2.2.2, integers in plain decimal. The event's hash is the
/// SHA-256 of those bytes. The stored line is the canonical bytes with `,"hash":"<hex>"` inserted
/// before the closing brace, then a newline. A line is valid only if it is byte for byte what the
/// encoder would produce from its own decoded fields, so no byte of a line can change unnoticed.
public enum EventCodec {
    /// The order keys appear in, for every operation. Absent optional fields are left out.
    public static let keyOrder = [
        "seq", "time", "op", "path", "to", "target", "mode", "owner", "group", "mtime", "size",
        "text", "base64", "object", "store", "format", "uid", "gid", "pid", "proc", "prev", "hash",
    ]

    // MARK: Encoding

    /// The bytes the event hash is computed over.
    public static func canonicalBytes(_ event: Event) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256 + (event.size.map { Int(min($0, 1 << 20)) } ?? 0))
        var w = CanonicalWriter(out: out)
        w.int("seq", event.seq)
        w.time("time", event.time)
        w.string("op", event.operation.rawValue)
        if let v = event.path { w.string("path", v) }
        if let v = event.destination { w.string("to", v) }
        if let v = event.target { w.string("target", v) }
        if let v = event.mode { w.mode("mode", v) }
        if let v = event.owner { w.int("owner", UInt64(v)) }
        if let v = event.group { w.int("group", UInt64(v)) }
        if let v = event.mtime { w.time("mtime", v) }
        if let v = event.size { w.int("size", v) }
        switch event.content {
        case .inline(let bytes)?:
            if isText(bytes) {
                w.stringBytes("text", bytes)
            } else {
                w.key("base64")
                w.out.append(UInt8(ascii: "\""))
                Base64.encode(bytes, into: &w.out)
                w.out.append(UInt8(ascii: "\""))
            }
        case .object(let digest)?:
            w.digest("object", digest)
        case nil:
            break
        }
        if let v = event.storeID { w.string("store", v) }
        if let v = event.format { w.string("format", v) }
        w.int("uid", UInt64(event.provenance.uid))
        w.int("gid", UInt64(event.provenance.gid))
        w.int("pid", UInt64(max(event.provenance.pid, 0)))
        w.string("proc", event.provenance.process)
        w.digest("prev", event.previousHash)
        w.out.append(UInt8(ascii: "}"))
        return w.out
    }

    /// Computes the event's hash, stores it in `event.hash`, and returns the full line with its newline.
    public static func seal(_ event: inout Event) -> [UInt8] {
        var bytes = canonicalBytes(event)
        event.hash = bytes.withUnsafeBytes { SHA256.hash($0) }
        bytes.removeLast()  // "}"
        bytes.append(contentsOf: #","hash":""#.utf8)
        event.hash.appendHex(to: &bytes)
        bytes.append(contentsOf: "\"}\n".utf8)
        return bytes
    }

    /// Whether inline content is written as `"text"` (UTF-8 without U+0000) or `"base64"`.
    public static func isText(_ bytes: [UInt8]) -> Bool {
        guard !bytes.contains(0) else { return false }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    // MARK: Decoding

    /// Why a line is not a valid event.
    public enum LineProblem: Error, Equatable, Sendable {
        /// Not a JSON object of this format at all (torn write, garbage, a broken quote...).
        case malformed(String)
        /// A well-formed event whose line is not the canonical encoding of its fields.
        case nonCanonical
        /// A well-formed, canonical event whose `hash` is not the SHA-256 of its canonical bytes.
        case hashMismatch(computed: Digest)
    }

    /// Decodes one line (without its newline) and checks it is canonical and its hash is right.
    /// On `.nonCanonical` and `.hashMismatch`, `partial` receives the decoded event.
    ///
    /// A line in canonical form with the right hash is accepted by `CanonicalLineDecoder`, which
    /// checks the canonical form while parsing; anything it does not accept goes to the reference
    /// decoder (`decodeReference`), which says exactly what is wrong.
    public static func decode(line: UnsafeRawBufferPointer, partial: inout Event?) -> Result<Event, LineProblem> {
        CanonicalLineDecoder(inline: .materialize).decode(line: line, partial: &partial)
    }

    /// The reference decoder: parses the fields, re-encodes them with `canonicalBytes` and compares
    /// the result with the line byte for byte, then checks the hash. Slow (a full re-encoding per
    /// line), and the definition of what the fast path must accept and reject.
    static func decodeReference(line: UnsafeRawBufferPointer, partial: inout Event?) -> Result<Event, LineProblem> {
        let event: Event
        switch parseFields(line) {
        case .failure(let problem): return .failure(problem)
        case .success(let e): event = e
        }
        partial = event
        var canonical = canonicalBytes(event)
        let computed = canonical.withUnsafeBytes { SHA256.hash($0) }
        // Expected line: canonical minus "}" + ,"hash":"<hex>"}
        canonical.removeLast()
        canonical.append(contentsOf: #","hash":""#.utf8)
        event.hash.appendHex(to: &canonical)
        canonical.append(contentsOf: "\"}".utf8)
        guard canonical.count == line.count, canonical.withUnsafeBytes({ $0.elementsEqual(line) }) else {
            return .failure(.nonCanonical)
        }
        guard computed == event.hash else { return .failure(.hashMismatch(computed: computed)) }
        return .success(event)
    }

    public static func decode(line: [UInt8]) -> Result<Event, LineProblem> {
        var partial: Event?
        return line.withUnsafeBytes { decode(line: $0, partial: &partial) }
    }

    /// The index of a key in `keyOrder`, matched on bytes without making a String.
    static func keyIndex(_ key: [UInt8]) -> Int? {
        keyBytes.firstIndex(of: key)
    }

    private static let keyBytes: [[UInt8]] = keyOrder.map { Array($0.utf8) }

    /// Which keys each operation requires and allows (docs/FORMAT.md §3), as bit masks over keyOrder.
    enum Masks {
        static func of(_ names: String...) -> UInt32 { names.reduce(0) { $0 | 1 << keyOrder.firstIndex(of: $1)! } }
        static let always = of("seq", "time", "op", "uid", "gid", "pid", "proc", "prev", "hash")
        static let content = of("text", "base64", "object")
        static let genesis = of("store", "format")
        static let pathModeSize = of("path", "mode", "size")
        static let pathMode = of("path", "mode")
        static let path = of("path")
        static let pathTo = of("path", "to")
        static let pathTarget = of("path", "target")
        static let ownerGroup = of("owner", "group")
        static let pathMtime = of("path", "mtime")

        /// (required, optional) keys besides those every event has.
        static func fields(_ op: Operation) -> (UInt32, UInt32) {
            switch op {
            case .genesis: return (genesis, 0)
            case .write, .truncate: return (pathModeSize, content)
            case .mkdir, .chmod: return (pathMode, 0)
            case .rmdir, .unlink: return (path, 0)
            case .rename: return (pathTo, 0)
            case .symlink: return (pathTarget, 0)
            case .chown: return (path, ownerGroup)
            case .utimens: return (pathMtime, 0)
            }
        }
    }

    /// Parses the JSON object and maps its fields onto an Event, checking which fields the
    /// operation requires and allows. Does not check canonical form or the hash.
    static func parseFields(_ line: UnsafeRawBufferPointer) -> Result<Event, LineProblem> {
        var p = StrictJSONParser(bytes: line)
        var seq: UInt64?, time: Timestamp?, op: Operation?, path: String?, to: String?, target: String?
        var mode: UInt32?, owner: UInt32?, group: UInt32?, mtime: Timestamp?, size: UInt64?
        var content: EventContent?, store: String?, format: String?
        var uid: UInt32?, gid: UInt32?, pid: Int32?, proc: String?, prev: Digest?, hash: Digest?
        var seen: UInt32 = 0  // bit i set: keyOrder[i] was present

        func fail(_ why: String) -> Result<Event, LineProblem> { .failure(.malformed(why)) }

        guard p.expect(UInt8(ascii: "{")) else { return fail("not a JSON object") }
        if p.peek() == UInt8(ascii: "}") { return fail("empty object") }
        while true {
            guard let keyBytes = p.string() else { return fail("bad key at byte \(p.index)") }
            guard let keyIndex = Self.keyIndex(keyBytes) else {
                return fail("unknown key \"\(String(decoding: keyBytes.prefix(40), as: UTF8.self))\"")
            }
            let key = Self.keyOrder[keyIndex]
            guard p.expect(UInt8(ascii: ":")) else { return fail("missing ':' after \"\(key)\"") }
            guard seen & (1 << keyIndex) == 0 else { return fail("duplicate key \"\(key)\"") }
            seen |= 1 << keyIndex
            switch keyIndex {
            case 0: guard let v = p.integer() else { return fail("bad seq") }; seq = v
            case 1: guard let v = p.timestamp() else { return fail("bad time") }; time = v
            case 2:
                guard let s = p.string(), let v = Operation(rawValue: String(decoding: s, as: UTF8.self))
                else { return fail("unknown op") }
                op = v
            case 3: guard let v = p.text() else { return fail("bad path") }; path = v
            case 4: guard let v = p.text() else { return fail("bad to") }; to = v
            case 5: guard let v = p.text() else { return fail("bad target") }; target = v
            case 6: guard let v = p.mode() else { return fail("bad mode") }; mode = v
            case 7: guard let v = p.integer(), v <= UInt32.max else { return fail("bad owner") }; owner = UInt32(v)
            case 8: guard let v = p.integer(), v <= UInt32.max else { return fail("bad group") }; group = UInt32(v)
            case 9: guard let v = p.timestamp() else { return fail("bad mtime") }; mtime = v
            case 10: guard let v = p.integer() else { return fail("bad size") }; size = v
            case 11:
                guard content == nil, let v = p.string() else { return fail("bad text") }
                content = .inline(v)
            case 12:
                guard content == nil, let s = p.string(), let v = Base64.decode(s) else { return fail("bad base64") }
                content = .inline(v)
            case 13:
                guard content == nil, let v = p.digest() else { return fail("bad object") }
                content = .object(v)
            case 14: guard let v = p.text() else { return fail("bad store") }; store = v
            case 15: guard let v = p.text() else { return fail("bad format") }; format = v
            case 16: guard let v = p.integer(), v <= UInt32.max else { return fail("bad uid") }; uid = UInt32(v)
            case 17: guard let v = p.integer(), v <= UInt32.max else { return fail("bad gid") }; gid = UInt32(v)
            case 18: guard let v = p.integer(), v <= Int32.max else { return fail("bad pid") }; pid = Int32(v)
            case 19: guard let v = p.text() else { return fail("bad proc") }; proc = v
            case 20: guard let v = p.digest() else { return fail("bad prev") }; prev = v
            default: guard let v = p.digest() else { return fail("bad hash") }; hash = v
            }
            if p.expect(UInt8(ascii: ",")) { continue }
            guard p.expect(UInt8(ascii: "}")) else { return fail("expected ',' or '}' at byte \(p.index)") }
            break
        }
        guard p.atEnd else { return fail("bytes after the object") }
        guard let seq, let time, let op, let uid, let gid, let pid, let proc, let prev, let hash else {
            return fail("missing one of seq, time, op, uid, gid, pid, proc, prev, hash")
        }

        // Fields by operation (docs/FORMAT.md §3), as bit masks over keyOrder.
        let present = seen & ~Masks.always
        let (required, optional) = Masks.fields(op)
        if op == .write || op == .truncate, (present & Masks.content).nonzeroBitCount != 1 {
            return fail("\(op.rawValue) needs one of text, base64, object")
        }
        if op == .chown, owner == nil, group == nil { return fail("chown needs owner or group") }
        guard present & required == required, present & ~required & ~optional == 0 else {
            let names = Self.keyOrder.indices.filter { present & (1 << $0) != 0 }.map { Self.keyOrder[$0] }
            return fail("fields \(names) do not fit op \(op.rawValue)")
        }
        if case .inline(let bytes)? = content, UInt64(bytes.count) != size {
            return fail("size \(size ?? 0) does not match the inline content (\(bytes.count) bytes)")
        }
        return .success(
            Event(
                seq: seq, time: time, operation: op, path: path, destination: to, target: target,
                mode: mode, owner: owner, group: group, mtime: mtime, size: size, content: content,
                storeID: store, format: format,
                provenance: Provenance(uid: uid, gid: gid, pid: pid, process: proc),
                previousHash: prev, hash: hash))
    }
}

// MARK: - Canonical writer

struct CanonicalWriter {
    var out: [UInt8]
    var first = true

    init(out: [UInt8]) {
        self.out = out
        self.out.append(UInt8(ascii: "{"))
    }

    mutating func key(_ k: StaticString) {
        if !first { out.append(UInt8(ascii: ",")) }
        first = false
        out.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func int(_ k: StaticString, _ v: UInt64) {
        key(k)
        appendDecimal(v)
    }

    mutating func appendDecimal(_ v: UInt64) {
        if v == 0 { out.append(UInt8(ascii: "0")); return }
        var digits = [UInt8]()
        var x = v
        while x > 0 { digits.append(UInt8(ascii: "0") + UInt8(x % 10)); x /= 10 }
        out.append(contentsOf: digits.reversed())
    }

    mutating func mode(_ k: StaticString, _ v: UInt32) {
        key(k)
        out.append(UInt8(ascii: "\""))
        for shift in [9, 6, 3, 0] { out.append(UInt8(ascii: "0") + UInt8((v >> UInt32(shift)) & 7)) }
        out.append(UInt8(ascii: "\""))
    }

    mutating func time(_ k: StaticString, _ t: Timestamp) {
        key(k)
        out.append(UInt8(ascii: "\""))
        t.appendCanonical(to: &out)
        out.append(UInt8(ascii: "\""))
    }

    mutating func digest(_ k: StaticString, _ d: Digest) {
        key(k)
        out.append(UInt8(ascii: "\""))
        d.appendHex(to: &out)
        out.append(UInt8(ascii: "\""))
    }

    mutating func string(_ k: StaticString, _ s: String) {
        key(k)
        var s = s
        s.withUTF8 { appendEscaped($0) }
    }

    mutating func stringBytes(_ k: StaticString, _ b: [UInt8]) {
        key(k)
        b.withUnsafeBufferPointer { appendEscaped($0) }
    }

    /// RFC 8785 §3.2.2.2: `"` and `\` escaped, control characters below U+0020 as \b \t \n \f \r
    /// or \u00xx (lowercase hex); every other code point as its UTF-8 bytes.
    mutating func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>) {
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        for i in 0..<bytes.count {
            let c = bytes[i]
            guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
            runStart = i + 1
            out.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            default:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(c >> 4)], hex[Int(c & 15)]])
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        out.append(UInt8(ascii: "\""))
    }
}

// MARK: - Strict JSON value parser

struct StrictJSONParser {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { index == bytes.count }

    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func expect(_ c: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == c else { return false }
        index += 1
        return true
    }

    /// A non-negative JSON integer: no sign, no leading zeros, no fraction or exponent.
    mutating func integer() -> UInt64? {
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(bytes[index] - 48))
            guard !o1, !o2 else { return nil }
            value = a
            index += 1
        }
        let length = index - start
        guard length > 0, !(length > 1 && bytes[start] == 48) else { return nil }
        return value
    }

    /// A JSON string's decoded UTF-8 bytes. Accepts every JSON escape (the canonical check later
    /// rejects the ones the encoder would not write). Rejects raw control characters and bad UTF-8.
    mutating func string() -> [UInt8]? {
        guard expect(UInt8(ascii: "\"")) else { return nil }
        var out = [UInt8]()
        var runStart = index
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                index += 1
                guard out.allSatisfy({ $0 < 0x80 }) || String(validating: out, as: UTF8.self) != nil else { return nil }
                return out
            }
            if c < 0x20 { return nil }
            if c == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                index += 1
                guard index < bytes.count else { return nil }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard expect(UInt8(ascii: "\\")), expect(UInt8(ascii: "u")), let low = hex4(),
                            (0xDC00...0xDFFF).contains(low)
                        else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        return nil
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: return nil
                }
                runStart = index
                continue
            }
            index += 1
        }
        return nil  // unterminated
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 97...102: d = UInt32(c - 87)
            case 65...70: d = UInt32(c - 55)
            default: return nil
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }

    /// A string value as a Swift String (the bytes were validated as UTF-8 by `string()`).
    mutating func text() -> String? {
        guard let b = string() else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    mutating func timestamp() -> Timestamp? {
        guard let b = string() else { return nil }
        return b.withUnsafeBytes { Timestamp(canonicalBytes: $0) }
    }

    /// 64 lowercase hex digits, parsed in place (no escapes possible in a canonical digest).
    mutating func digest() -> Digest? {
        guard index + 66 <= bytes.count, bytes[index] == UInt8(ascii: "\""), bytes[index + 65] == UInt8(ascii: "\"")
        else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for i in 0..<64 {
            let c = bytes[index + 1 + i]
            let v: UInt64
            switch c {
            case 48...57: v = UInt64(c - 48)
            case 97...102: v = UInt64(c - 87)
            default: return nil
            }
            switch i / 16 {
            case 0: words.0 = words.0 << 4 | v
            case 1: words.1 = words.1 << 4 | v
            case 2: words.2 = words.2 << 4 | v
            default: words.3 = words.3 << 4 | v
            }
        }
        index += 66
        return Digest(w0: words.0, w1: words.1, w2: words.2, w3: words.3)
    }

    /// Four octal digits, e.g. "0644".
    mutating func mode() -> UInt32? {
        guard let b = string(), b.count == 4 else { return nil }
        var v: UInt32 = 0
        for c in b {
            guard c >= 48, c <= 55 else { return nil }
            v = v << 3 | UInt32(c - 48)
        }
        return v
    }
}

// MARK: - Fast canonical decoding

extension EventCodec {
    /// What the fast decoder does with inline content (`text`, `base64`).
    enum InlineContent: Sendable {
        /// Decodes it into the event as `.inline(bytes)`, like the reference decoder.
        case materialize
        /// Checks it just as fully (escapes, UTF-8, NUL, base64 form, the text/base64 choice,
        /// decoded length == `size`) but does not copy it out: the event gets `.inline([])`.
        /// For the open scan, which needs only `size` (the bytes are read again from the log).
        case validateOnly
    }
}

/// Decodes lines that are exactly in canonical form (docs/FORMAT.md §5) with the right hash,
/// checking the canonical form while parsing instead of re-encoding the event and comparing.
///
/// A line is accepted only when every byte is what `EventCodec.canonicalBytes` would write for the
/// fields it holds: keys strictly in `keyOrder` (so `hash` last), integers without leading zeros,
/// strings with exactly the escapes of §5, a text/base64 choice and a base64 form that re-encoding
/// would reproduce, a `proc` that `Provenance.sanitize` leaves alone. The hash is then the SHA-256
/// of the line up to `,"hash":"` followed by `}`, which are the canonical bytes.
///
/// Any line the fast path does not accept goes to `EventCodec.decodeReference`, so the outcome
/// (and the `LineProblem` of a bad line) is always the reference decoder's:
/// `Tests/LayerCoreTests/CanonicalCheckTests.swift` cross-checks both on random and mutated lines.
///
/// Holds a SHA-256 context and a scratch buffer, reused from line to line: one per thread.
final class CanonicalLineDecoder {
    let inline: EventCodec.InlineContent
    private let context: OpaquePointer
    private var scratch: [UInt8] = []

    init(inline: EventCodec.InlineContent) {
        self.inline = inline
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed") }
        context = ctx
    }

    /// SHA-256 fetched once: `EVP_sha256()` makes every `EVP_DigestInit_ex` look the
    /// implementation up again (a locked table lookup by name), which costs as much as hashing a line.
    private nonisolated(unsafe) static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("EVP_MD_fetch(SHA256) failed") }
        return md
    }()

    deinit { EVP_MD_CTX_free(context) }

    /// Same contract as `EventCodec.decode(line:partial:)`.
    func decode(line: UnsafeRawBufferPointer, partial: inout Event?) -> Result<Event, EventCodec.LineProblem> {
        if let event = decodeCanonical(line) { return .success(event) }
        return EventCodec.decodeReference(line: line, partial: &partial)
    }

    /// SHA-256 of `prefix` followed by `}`.
    private func hashCanonical(_ prefix: UnsafeRawBufferPointer) -> Digest {
        var brace = UInt8(ascii: "}")
        var out: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var length: UInt32 = 0
        let ok = withUnsafeMutableBytes(of: &out) { o in
            EVP_DigestInit_ex(context, Self.sha256, nil) == 1
                && EVP_DigestUpdate(context, prefix.baseAddress, prefix.count) == 1
                && EVP_DigestUpdate(context, &brace, 1) == 1
                && EVP_DigestFinal_ex(context, o.baseAddress!.assumingMemoryBound(to: UInt8.self), &length) == 1
        }
        precondition(ok && length == 32, "SHA-256 failed")
        return Digest(w0: UInt64(bigEndian: out.0), w1: UInt64(bigEndian: out.1), w2: UInt64(bigEndian: out.2), w3: UInt64(bigEndian: out.3))
    }

    /// The event if the line is canonical and its hash right; nil otherwise (whatever the reason).
    func decodeCanonical(_ line: UnsafeRawBufferPointer) -> Event? {
        guard let raw = line.baseAddress, line.count > 2 else { return nil }
        let p = raw.assumingMemoryBound(to: UInt8.self)
        let n = line.count
        typealias S = CanonicalScan

        var seq: UInt64 = 0, time = Timestamp(nanoseconds: 0), op = Operation.genesis
        var path: String?, to: String?, target: String?
        var mode: UInt32?, owner: UInt32?, group: UInt32?, mtime: Timestamp?, size: UInt64?
        var content: EventContent?, inlineCount = 0, store: String?, format: String?
        var uid: UInt32 = 0, gid: UInt32 = 0, pid: Int32 = 0
        var proc = "", procCount = 0, prev = Digest.zero, hash = Digest.zero
        var seen: UInt32 = 0
        var lastKey = -1
        var hashMember = 0  // where `,"hash":` starts: the canonical bytes end there (plus "}")

        guard p[0] == UInt8(ascii: "{") else { return nil }
        var i = 1
        while true {
            // Key: lowercase letters and digits only, in strictly increasing keyOrder.
            guard i < n, p[i] == UInt8(ascii: "\"") else { return nil }
            let keyStart = i + 1
            var j = keyStart
            var packed: UInt64 = 0
            while j < n, j - keyStart < 7 {
                let c = p[j]
                guard (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) else { break }
                packed |= UInt64(c) << (8 * UInt64(j - keyStart))
                j += 1
            }
            guard j + 1 < n, p[j] == UInt8(ascii: "\""), p[j + 1] == UInt8(ascii: ":"),
                let key = S.keyIndex(packed), key > lastKey
            else { return nil }
            if key == 21 { hashMember = i - 1 }
            lastKey = key
            seen |= 1 << UInt32(key)
            i = j + 2

            switch key {
            case 0: guard let v = S.integer(p, &i, n) else { return nil }; seq = v
            case 1: guard let v = S.timestamp(p, &i, n) else { return nil }; time = v
            case 2: guard let v = S.operation(p, &i, n) else { return nil }; op = v
            case 3: guard let v = text(p, &i, n) else { return nil }; path = v.string
            case 4: guard let v = text(p, &i, n) else { return nil }; to = v.string
            case 5: guard let v = text(p, &i, n) else { return nil }; target = v.string
            case 6: guard let v = S.mode(p, &i, n) else { return nil }; mode = v
            case 7: guard let v = S.integer(p, &i, n), v <= UInt32.max else { return nil }; owner = UInt32(v)
            case 8: guard let v = S.integer(p, &i, n), v <= UInt32.max else { return nil }; group = UInt32(v)
            case 9: guard let v = S.timestamp(p, &i, n) else { return nil }; mtime = v
            case 10: guard let v = S.integer(p, &i, n) else { return nil }; size = v
            case 11:
                guard let (v, count) = textContent(p, &i, n) else { return nil }
                content = v; inlineCount = count
            case 12:
                guard let (v, count) = base64Content(p, &i, n) else { return nil }
                content = v; inlineCount = count
            case 13: guard let v = S.digest(p, &i, n) else { return nil }; content = .object(v)
            case 14: guard let v = text(p, &i, n) else { return nil }; store = v.string
            case 15: guard let v = text(p, &i, n) else { return nil }; format = v.string
            case 16: guard let v = S.integer(p, &i, n), v <= UInt32.max else { return nil }; uid = UInt32(v)
            case 17: guard let v = S.integer(p, &i, n), v <= UInt32.max else { return nil }; gid = UInt32(v)
            case 18: guard let v = S.integer(p, &i, n), v <= Int32.max else { return nil }; pid = Int32(v)
            case 19: guard let v = text(p, &i, n) else { return nil }; proc = v.string; procCount = v.count
            case 20: guard let v = S.digest(p, &i, n) else { return nil }; prev = v
            default: guard let v = S.digest(p, &i, n) else { return nil }; hash = v
            }
            guard i < n else { return nil }
            if p[i] == UInt8(ascii: ",") { i += 1; continue }
            guard p[i] == UInt8(ascii: "}"), i + 1 == n else { return nil }
            break
        }
        // hash is the last key of keyOrder: present means it came last.
        guard seen & EventCodec.Masks.always == EventCodec.Masks.always else { return nil }

        // Fields by operation, exactly as in parseFields.
        let present = seen & ~EventCodec.Masks.always
        let (required, optional) = EventCodec.Masks.fields(op)
        if op == .write || op == .truncate, (present & EventCodec.Masks.content).nonzeroBitCount != 1 { return nil }
        if op == .chown, owner == nil, group == nil { return nil }
        guard present & required == required, present & ~required & ~optional == 0 else { return nil }
        if case .inline? = content, UInt64(inlineCount) != size { return nil }

        // The encoder writes Provenance.sanitize(proc), which only ever drops characters.
        let provenance = Provenance(uid: uid, gid: gid, pid: pid, process: proc)
        guard provenance.process.utf8.count == procCount else { return nil }

        guard hashCanonical(UnsafeRawBufferPointer(start: raw, count: hashMember)) == hash else { return nil }
        return Event(
            seq: seq, time: time, operation: op, path: path, destination: to, target: target,
            mode: mode, owner: owner, group: group, mtime: mtime, size: size, content: content,
            storeID: store, format: format, provenance: provenance, previousHash: prev, hash: hash)
    }

    /// A canonical string value as a Swift String, and its length in bytes.
    private func text(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> (string: String, count: Int)? {
        guard let s = CanonicalScan.string(p, i, n) else { return nil }
        defer { i = s.end }
        let start = i + 1, rawCount = s.end - 1 - start
        if !s.escaped {
            return (String(decoding: UnsafeBufferPointer(start: p + start, count: rawCount), as: UTF8.self), rawCount)
        }
        scratch.removeAll(keepingCapacity: true)
        CanonicalScan.unescape(p + start, rawCount, into: &scratch)
        return (String(decoding: scratch, as: UTF8.self), scratch.count)
    }

    /// `text` content: a canonical string without NUL (the encoder writes content with a NUL as
    /// base64). Returns the content (or the empty marker) and its length in bytes.
    private func textContent(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> (EventContent, Int)? {
        guard let s = CanonicalScan.string(p, i, n), !s.nul else { return nil }
        defer { i = s.end }
        let start = i + 1, rawCount = s.end - 1 - start
        switch inline {
        case .validateOnly:
            return (.inline([]), s.count)
        case .materialize:
            if !s.escaped { return (.inline(Array(UnsafeBufferPointer(start: p + start, count: rawCount))), rawCount) }
            var bytes = [UInt8]()
            bytes.reserveCapacity(s.count)
            CanonicalScan.unescape(p + start, rawCount, into: &bytes)
            return (.inline(bytes), bytes.count)
        }
    }

    /// `base64` content: canonical base64 (pad bits zero) of bytes that are not text (else the
    /// encoder would have written `text`).
    private func base64Content(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> (EventContent, Int)? {
        guard i < n, p[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        var end = start
        while end < n, p[end] != UInt8(ascii: "\"") { end += 1 }
        guard end < n else { return nil }
        // validateOnly decodes into the scratch buffer (the bytes are needed for the text check).
        var bytes: [UInt8] = []
        if case .validateOnly = inline {
            swap(&bytes, &scratch)
            bytes.removeAll(keepingCapacity: true)
        }
        defer { if case .validateOnly = inline { swap(&bytes, &scratch) } }
        guard CanonicalScan.base64Decode(p + start, end - start, into: &bytes),
            !bytes.withUnsafeBufferPointer({ CanonicalScan.isText($0) })
        else { return nil }
        i = end + 1
        switch inline {
        case .materialize: return (.inline(bytes), bytes.count)
        case .validateOnly: return (.inline([]), bytes.count)
        }
    }
}

/// The byte-level checks of the fast decoder, on raw pointers. Every function checks the exact
/// canonical form and returns nil (or false) for anything else.
enum CanonicalScan {
    /// A key packed little-endian into a UInt64 (keys are 2 to 6 lowercase letters or digits).
    @inline(__always)
    static func keyIndex(_ packed: UInt64) -> Int? {
        switch packed {
        case 0x716573: return 0  // seq
        case 0x656d6974: return 1  // time
        case 0x706f: return 2  // op
        case 0x68746170: return 3  // path
        case 0x6f74: return 4  // to
        case 0x746567726174: return 5  // target
        case 0x65646f6d: return 6  // mode
        case 0x72656e776f: return 7  // owner
        case 0x70756f7267: return 8  // group
        case 0x656d69746d: return 9  // mtime
        case 0x657a6973: return 10  // size
        case 0x74786574: return 11  // text
        case 0x343665736162: return 12  // base64
        case 0x7463656a626f: return 13  // object
        case 0x65726f7473: return 14  // store
        case 0x74616d726f66: return 15  // format
        case 0x646975: return 16  // uid
        case 0x646967: return 17  // gid
        case 0x646970: return 18  // pid
        case 0x636f7270: return 19  // proc
        case 0x76657270: return 20  // prev
        case 0x68736168: return 21  // hash
        default: return nil
        }
    }

    /// The `op` value, unescaped (no operation name has a character that needs escaping).
    @inline(__always)
    static func operation(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> Operation? {
        guard i < n, p[i] == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        var packed: UInt64 = 0
        while j < n, j - i <= 8 {
            let c = p[j]
            guard c >= UInt8(ascii: "a"), c <= UInt8(ascii: "z") else { break }
            packed |= UInt64(c) << (8 * UInt64(j - i - 1))
            j += 1
        }
        guard j < n, p[j] == UInt8(ascii: "\"") else { return nil }
        let op: Operation
        switch packed {
        case 0x736973656e6567: op = .genesis
        case 0x6574697277: op = .write
        case 0x657461636e757274: op = .truncate
        case 0x7269646b6d: op = .mkdir
        case 0x7269646d72: op = .rmdir
        case 0x6b6e696c6e75: op = .unlink
        case 0x656d616e6572: op = .rename
        case 0x6b6e696c6d7973: op = .symlink
        case 0x646f6d6863: op = .chmod
        case 0x6e776f6863: op = .chown
        case 0x736e656d697475: op = .utimens
        default: return nil
        }
        i = j + 1
        return op
    }

    /// A non-negative integer: no sign, no leading zeros, no fraction or exponent, fits 64 bits.
    @inline(__always)
    static func integer(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> UInt64? {
        let start = i
        var value: UInt64 = 0
        while i < n {
            let d = p[i] &- 48
            guard d <= 9 else { break }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            value = a
            i += 1
        }
        let length = i - start
        guard length > 0, length == 1 || p[start] != 48 else { return nil }
        return value
    }

    /// `"` + exactly the 30 bytes of a canonical timestamp + `"`.
    @inline(__always)
    static func timestamp(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> Timestamp? {
        guard i + 32 <= n, p[i] == UInt8(ascii: "\""), p[i + 31] == UInt8(ascii: "\""),
            let t = Timestamp(canonicalBytes: UnsafeRawBufferPointer(start: p + i + 1, count: 30))
        else { return nil }
        i += 32
        return t
    }

    /// `"` + four octal digits + `"`.
    @inline(__always)
    static func mode(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> UInt32? {
        guard i + 6 <= n, p[i] == UInt8(ascii: "\""), p[i + 5] == UInt8(ascii: "\"") else { return nil }
        var v: UInt32 = 0
        for k in 1...4 {
            let d = p[i + k] &- 48
            guard d <= 7 else { return nil }
            v = v << 3 | UInt32(d)
        }
        i += 6
        return v
    }

    /// `"` + 64 lowercase hex digits + `"`.
    @inline(__always)
    static func digest(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ n: Int) -> Digest? {
        guard i + 66 <= n, p[i] == UInt8(ascii: "\""), p[i + 65] == UInt8(ascii: "\"") else { return nil }
        var valid = true
        @inline(__always) func word(_ at: Int) -> UInt64 {
            hex8(p + at, &valid) << 32 | hex8(p + at + 8, &valid)
        }
        let d = Digest(w0: word(i + 1), w1: word(i + 17), w2: word(i + 33), w3: word(i + 49))
        guard valid else { return nil }
        i += 66
        return d
    }

    /// Eight lowercase hex digits at `p` as a 32-bit value (first digit most significant);
    /// clears `valid` if any byte is not `0`-`9` or `a`-`f`. Eight bytes at a time (SWAR).
    @inline(__always)
    static func hex8(_ p: UnsafePointer<UInt8>, _ valid: inout Bool) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
        let w = UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
        // For bytes below 0x80, x + (0x80 - lo) has bit 7 set iff x >= lo, x + (0x7F - hi) iff x > hi,
        // and neither carries into the next byte.
        let digit = (w &+ ones &* (0x80 - 0x30)) & ~(w &+ ones &* (0x7F - 0x39))
        let letter = (w &+ ones &* (0x80 - 0x61)) & ~(w &+ ones &* (0x7F - 0x66))
        if w & high != 0 || (digit | letter) & high != high { valid = false }
        // '0'-'9' -> low nibble; 'a'-'f' -> low nibble (1-6) + 9.
        var m = ((w & (ones &* 0x0F)) &+ ((w >> 6) & ones) &* 9).byteSwapped
        m = (m | (m >> 4)) & 0x00FF_00FF_00FF_00FF
        m = (m | (m >> 8)) & 0x0000_FFFF_0000_FFFF
        m = (m | (m >> 16)) & 0x0000_0000_FFFF_FFFF
        return m
    }

    struct StringScan {
        /// Index after the closing quote.
        var end: Int
        /// Length of the decoded string in bytes.
        var count: Int
        /// Whether the string has any escape.
        var escaped: Bool
        /// Whether it holds U+0000 (written `\u0000`).
        var nul: Bool
    }

    /// Bit 7 of byte k set where byte k of `w` may be special in a JSON string: `"`, `\`, below
    /// U+0020, or not ASCII. The lowest set bit is exact (false positives only above it).
    @inline(__always)
    static func specialBytes(_ w: UInt64) -> UInt64 {
        let high: UInt64 = 0x8080_8080_8080_8080, ones: UInt64 = 0x0101_0101_0101_0101
        let quote = w ^ (ones &* 0x22), backslash = w ^ (ones &* 0x5C)
        let control = (w &- ones &* 0x20) & ~w
        let q = (quote &- ones) & ~quote
        let b = (backslash &- ones) & ~backslash
        return (w | control | q | b) & high
    }

    /// Checks a canonical JSON string starting at the quote at `start`: valid UTF-8, no raw
    /// control characters, and only the escapes the encoder writes (`\"` `\\` `\b` `\t` `\n` `\f`
    /// `\r`, and `\u00xx` in lowercase hex for the other characters below U+0020).
    @inline(__always)
    static func string(_ p: UnsafePointer<UInt8>, _ start: Int, _ n: Int) -> StringScan? {
        guard start < n, p[start] == UInt8(ascii: "\"") else { return nil }
        var i = start + 1
        var removed = 0
        var nul = false
        while true {
            while i + 8 <= n {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                let special = specialBytes(w)
                if special == 0 { i += 8; continue }
                i += special.trailingZeroBitCount >> 3
                break
            }
            guard i < n else { return nil }
            let c = p[i]
            if c == UInt8(ascii: "\"") {
                return StringScan(end: i + 1, count: i - start - 1 - removed, escaped: removed != 0, nul: nul)
            }
            if c == UInt8(ascii: "\\") {
                guard i + 1 < n else { return nil }
                switch p[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "b"), UInt8(ascii: "t"),
                    UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "r"):
                    i += 2
                    removed += 1
                case UInt8(ascii: "u"):
                    guard i + 5 < n, p[i + 2] == UInt8(ascii: "0"), p[i + 3] == UInt8(ascii: "0") else { return nil }
                    let h = p[i + 4] &- 48, l = p[i + 5]
                    let low: UInt8
                    if l &- 48 <= 9 { low = l &- 48 } else if l &- 97 <= 5 { low = l &- 87 } else { return nil }
                    guard h <= 1 else { return nil }
                    let v = h << 4 | low
                    // These have a short form.
                    guard v != 0x08, v != 0x09, v != 0x0A, v != 0x0C, v != 0x0D else { return nil }
                    if v == 0 { nul = true }
                    i += 6
                    removed += 5
                default:
                    return nil
                }
                continue
            }
            if c < 0x20 { return nil }
            if c < 0x80 { i += 1; continue }
            guard let length = utf8Sequence(p, i, n) else { return nil }
            i += length
        }
    }

    /// Length of the valid UTF-8 sequence at `i` whose first byte is >= 0x80 (Unicode Table 3-7:
    /// no overlong forms, no surrogates, nothing above U+10FFFF), or nil.
    @inline(__always)
    static func utf8Sequence(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Int? {
        let c = p[i]
        @inline(__always) func continuation(_ k: Int) -> Bool { p[i + k] & 0xC0 == 0x80 }
        switch c {
        case 0xC2...0xDF:
            guard i + 1 < n, continuation(1) else { return nil }
            return 2
        case 0xE0...0xEF:
            guard i + 2 < n else { return nil }
            let b = p[i + 1]
            let (lo, hi): (UInt8, UInt8) = c == 0xE0 ? (0xA0, 0xBF) : c == 0xED ? (0x80, 0x9F) : (0x80, 0xBF)
            guard b >= lo, b <= hi, continuation(2) else { return nil }
            return 3
        case 0xF0...0xF4:
            guard i + 3 < n else { return nil }
            let b = p[i + 1]
            let (lo, hi): (UInt8, UInt8) = c == 0xF0 ? (0x90, 0xBF) : c == 0xF4 ? (0x80, 0x8F) : (0x80, 0xBF)
            guard b >= lo, b <= hi, continuation(2), continuation(3) else { return nil }
            return 4
        default:
            return nil
        }
    }

    /// Whether bytes are text in the sense of `EventCodec.isText`: valid UTF-8 without NUL.
    static func isText(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let p = bytes.baseAddress else { return true }
        let n = bytes.count
        let high: UInt64 = 0x8080_8080_8080_8080, ones: UInt64 = 0x0101_0101_0101_0101
        var i = 0
        while i < n {
            if i + 8 <= n {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                if ((w &- ones) & ~w | w) & high == 0 { i += 8; continue }
            }
            let c = p[i]
            if c == 0 { return false }
            if c < 0x80 { i += 1; continue }
            guard let length = utf8Sequence(p, i, n) else { return false }
            i += length
        }
        return true
    }

    /// Decodes the raw bytes of a string that `string()` accepted (canonical escapes only).
    static func unescape(_ p: UnsafePointer<UInt8>, _ count: Int, into out: inout [UInt8]) {
        var i = 0
        var run = 0
        while i < count {
            guard p[i] == UInt8(ascii: "\\") else { i += 1; continue }
            out.append(contentsOf: UnsafeBufferPointer(start: p + run, count: i - run))
            let e = p[i + 1]
            switch e {
            case UInt8(ascii: "b"): out.append(0x08); i += 2
            case UInt8(ascii: "t"): out.append(0x09); i += 2
            case UInt8(ascii: "n"): out.append(0x0A); i += 2
            case UInt8(ascii: "f"): out.append(0x0C); i += 2
            case UInt8(ascii: "r"): out.append(0x0D); i += 2
            case UInt8(ascii: "u"):
                let l = p[i + 5]
                out.append((p[i + 4] &- 48) << 4 | (l <= 57 ? l &- 48 : l &- 87))
                i += 6
            default: out.append(e); i += 2  // \" and \\
            }
            run = i
        }
        out.append(contentsOf: UnsafeBufferPointer(start: p + run, count: count - run))
    }

    @inline(__always)
    static func base64Value(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - 65)
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - 71)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c + 4)
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }

    /// Decodes canonical base64 (RFC 4648 §4, `=` padding, no escapes, and the unused bits of
    /// the last group zero, so that encoding the bytes again gives the same text).
    static func base64Decode(_ p: UnsafePointer<UInt8>, _ count: Int, into out: inout [UInt8]) -> Bool {
        guard count % 4 == 0 else { return false }
        out.reserveCapacity(out.count + count / 4 * 3)
        var i = 0
        while i + 4 < count {
            guard let a = base64Value(p[i]), let b = base64Value(p[i + 1]), let c = base64Value(p[i + 2]),
                let d = base64Value(p[i + 3])
            else { return false }
            let v = a << 18 | b << 12 | c << 6 | d
            out.append(UInt8(truncatingIfNeeded: v >> 16))
            out.append(UInt8(truncatingIfNeeded: v >> 8))
            out.append(UInt8(truncatingIfNeeded: v))
            i += 4
        }
        guard i < count else { return true }  // empty
        guard let a = base64Value(p[i]), let b = base64Value(p[i + 1]) else { return false }
        let pad = UInt8(ascii: "=")
        if p[i + 2] == pad {
            guard p[i + 3] == pad, b & 0x0F == 0 else { return false }
            out.append(UInt8(truncatingIfNeeded: a << 2 | b >> 4))
        } else if p[i + 3] == pad {
            guard let c = base64Value(p[i + 2]), c & 0x03 == 0 else { return false }
            let v = a << 18 | b << 12 | c << 6
            out.append(UInt8(truncatingIfNeeded: v >> 16))
            out.append(UInt8(truncatingIfNeeded: v >> 8))
        } else {
            guard let c = base64Value(p[i + 2]), let d = base64Value(p[i + 3]) else { return false }
            let v = a << 18 | b << 12 | c << 6 | d
            out.append(UInt8(truncatingIfNeeded: v >> 16))
            out.append(UInt8(truncatingIfNeeded: v >> 8))
            out.append(UInt8(truncatingIfNeeded: v))
        }
        return true
    }
}
