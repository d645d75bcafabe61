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
    public static func decode(line: UnsafeRawBufferPointer, partial: inout Event?) -> Result<Event, LineProblem> {
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
