import Foundation
import Testing

@testable import LayerCore

/// The fast decoder (`CanonicalLineDecoder`, which checks canonical form while parsing) against
/// the reference decoder (`EventCodec.decodeReference`, which re-encodes the parsed event and
/// compares): on random events of every kind and on many mutations of their lines, both must
/// accept exactly the same lines, with the same event.
///
/// Mutated lines are tried twice: as they are, and "rehashed" (the `hash` replaced by the SHA-256
/// of the mutated line's bytes before `,"hash":` plus `}`). A rehashed line fails only if its form
/// is not canonical, so a canonical check that let something through would show up as an accept
/// where the reference rejects; without rehashing the hash check would hide it.
@Suite struct CanonicalCheckTests {
    // MARK: Random events

    struct Rng: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func chance(_ percent: UInt64) -> Bool { next() % 100 < percent }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Characters that matter to the encoder: every control character, quote, backslash, slash,
    /// DEL, and non-ASCII of every UTF-8 length (including the edges of the ranges).
    static let specials: [Unicode.Scalar] =
        (0..<0x20).map { Unicode.Scalar(UInt8($0)) } + [
            "\"", "\\", "/", "\u{7F}", "\u{80}", "é", "\u{7FF}", "\u{800}", "☕", "\u{D7FF}", "\u{E000}",
            "\u{FFFD}", "\u{FFFF}", "\u{10000}", "𝄞", "\u{10FFFF}", " ", "=", "+", "u", "0", "a", "F",
        ]

    static func randomString(_ rng: inout Rng, maxLength: Int = 24, specialPercent: UInt64 = 30) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<rng.below(maxLength + 1) {
            if rng.chance(specialPercent) {
                s.append(specials[rng.below(specials.count)])
            } else {
                s.append(Unicode.Scalar(UInt8(0x20 + rng.below(0x5F))))
            }
        }
        return String(s)
    }

    static func randomContent(_ rng: inout Rng) -> [UInt8] {
        switch rng.below(6) {
        case 0: return Array(randomString(&rng, maxLength: 300, specialPercent: 10).utf8)  // text (NUL possible)
        case 1: return Array(randomString(&rng, maxLength: 40, specialPercent: 0).utf8)  // plain ASCII
        case 2: return (0..<rng.below(40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }  // binary
        case 3: return Array(randomString(&rng, maxLength: 20).utf8) + [0] + Array("tail".utf8)  // UTF-8 with NUL
        case 4:  // valid UTF-8 but for one byte
            var b = Array(randomString(&rng, maxLength: 20, specialPercent: 50).utf8)
            b.insert([0x80, 0xC0, 0xC1, 0xED, 0xF5, 0xFF, 0xE0, 0xF0, 0xF4][rng.below(9)], at: rng.below(b.count + 1))
            return b
        default: return []
        }
    }

    static func randomDigest(_ rng: inout Rng) -> Digest {
        Digest(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next())
    }

    static func randomTime(_ rng: inout Rng) -> Timestamp {
        let span = UInt64(bitPattern: Timestamp.maximum.nanoseconds &- Timestamp.minimum.nanoseconds) &+ 1
        return Timestamp(nanoseconds: Timestamp.minimum.nanoseconds &+ Int64(bitPattern: rng.next() % span))
    }

    static func randomEvent(_ rng: inout Rng, seq: UInt64) -> Event {
        let op = Operation.allCases[rng.below(Operation.allCases.count)]
        var provenance = Provenance(
            uid: UInt32(truncatingIfNeeded: rng.next()), gid: rng.chance(20) ? 0 : UInt32(truncatingIfNeeded: rng.next()),
            pid: Int32(truncatingIfNeeded: rng.next() & 0x7FFF_FFFF), process: randomString(&rng, maxLength: 16, specialPercent: 5))
        if rng.chance(15) {
            // What sanitize would refuse: the encoder writes it, the decoder must call it non-canonical.
            provenance.process = rng.chance(50) ? randomString(&rng, maxLength: 20) : String(repeating: "p", count: 60 + rng.below(10))
        }
        var event = Event(
            seq: rng.chance(10) ? rng.next() : seq, time: randomTime(&rng), operation: op,
            provenance: provenance, previousHash: rng.chance(5) ? .zero : randomDigest(&rng))
        func path() -> String { "/" + randomString(&rng, maxLength: 30) }
        switch op {
        case .genesis:
            event.storeID = rng.chance(50) ? UUID().uuidString.lowercased() : randomString(&rng)
            event.format = rng.chance(70) ? Event.formatName : randomString(&rng)
        case .write, .truncate:
            event.path = path()
            event.mode = UInt32(rng.below(0o10000))
            if rng.chance(15) {
                event.content = .object(randomDigest(&rng))
                event.size = rng.next() >> UInt64(rng.below(64))
            } else {
                let content = randomContent(&rng)
                event.content = .inline(content)
                event.size = UInt64(content.count)
            }
        case .mkdir, .chmod:
            event.path = path()
            event.mode = UInt32(rng.below(0o10000))
        case .rmdir, .unlink:
            event.path = path()
        case .rename:
            event.path = path()
            event.destination = path()
        case .symlink:
            event.path = path()
            event.target = randomString(&rng, maxLength: 40)
        case .chown:
            event.path = path()
            switch rng.below(3) {
            case 0: event.owner = UInt32(truncatingIfNeeded: rng.next())
            case 1: event.group = UInt32(truncatingIfNeeded: rng.next())
            default: event.owner = 0; event.group = UInt32(rng.below(100))
            }
        case .utimens:
            event.path = path()
            event.mtime = randomTime(&rng)
        }
        // Now and then a field that does not fit, one missing, or a wrong size: malformed.
        if rng.chance(3) { event.mode = event.mode == nil ? 0o644 : nil }
        if rng.chance(2) { event.size = (event.size ?? 0) &+ 1 }
        if rng.chance(2) { event.target = event.target == nil ? "x" : nil }
        if rng.chance(2) { event.content = event.content == nil ? .inline([]) : nil }
        return event
    }

    // MARK: Comparing the decoders

    static let hashMemberLength = #","hash":""#.utf8.count + 64 + 2

    /// The line with its hash replaced by the SHA-256 of its bytes before `,"hash":` plus `}`,
    /// when it still ends in a hash member; else nil.
    static func rehashed(_ line: [UInt8]) -> [UInt8]? {
        guard line.count > hashMemberLength else { return nil }
        let cut = line.count - hashMemberLength
        guard Array(line[cut..<(cut + 9)]) == Array(#","hash":""#.utf8), line.last == UInt8(ascii: "}") else { return nil }
        let hash = SHA256.hash(Array(line[..<cut]) + [UInt8(ascii: "}")])
        var out = Array(line[..<cut]) + Array(#","hash":""#.utf8)
        hash.appendHex(to: &out)
        out += Array("\"}".utf8)
        return out
    }

    struct Tally {
        var lines = 0, accepted = 0, malformed = 0, nonCanonical = 0, hashMismatch = 0
    }

    /// Decodes `line` with the reference and with the fast decoder in both content modes, and
    /// checks they agree. Returns the reference result.
    @discardableResult
    static func compare(
        _ line: [UInt8], _ context: @autoclosure () -> String, tally: inout Tally,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Result<Event, EventCodec.LineProblem> {
        let full = CanonicalLineDecoder(inline: .materialize)
        let scan = CanonicalLineDecoder(inline: .validateOnly)
        return line.withUnsafeBytes { raw in
            var referencePartial: Event?, fastPartial: Event?, scanPartial: Event?
            let reference = EventCodec.decodeReference(line: raw, partial: &referencePartial)
            let fast = full.decodeCanonical(raw)
            let fastResult = full.decode(line: raw, partial: &fastPartial)
            let scanned = scan.decodeCanonical(raw)
            let scanResult = scan.decode(line: raw, partial: &scanPartial)
            let public_ = EventCodec.decode(line: line)

            tally.lines += 1
            switch reference {
            case .success: tally.accepted += 1
            case .failure(.malformed): tally.malformed += 1
            case .failure(.nonCanonical): tally.nonCanonical += 1
            case .failure(.hashMismatch): tally.hashMismatch += 1
            }
            let text = String(decoding: line, as: UTF8.self)
            // The fast path accepts exactly what the reference accepts, with the same event.
            switch reference {
            case .success(let event):
                #expect(fast == event, "\(context()): fast path disagrees on\n\(text)", sourceLocation: sourceLocation)
                var stripped = event
                if case .inline? = event.content { stripped.content = .inline([]) }
                #expect(scanned == stripped, "\(context()): scan path disagrees on\n\(text)", sourceLocation: sourceLocation)
            case .failure(let problem):
                #expect(fast == nil, "\(context()): fast path accepted what the reference rejects (\(problem))\n\(text)", sourceLocation: sourceLocation)
                #expect(scanned == nil, "\(context()): scan path accepted what the reference rejects (\(problem))\n\(text)", sourceLocation: sourceLocation)
            }
            // And the whole decode gives the reference's result, problem and partial event included.
            #expect(fastResult == reference && public_ == reference, "\(context()): \(fastResult) vs \(reference)\n\(text)", sourceLocation: sourceLocation)
            if case .failure = reference {
                #expect(fastPartial == referencePartial, "\(context()): partial event differs", sourceLocation: sourceLocation)
            }
            if case .success(let event) = reference, case .success(let e) = scanResult {
                #expect(e.size == event.size && e.hash == event.hash, sourceLocation: sourceLocation)
            } else {
                #expect(scanResult == reference, "\(context()): scan decode \(scanResult) vs \(reference)\n\(text)", sourceLocation: sourceLocation)
            }
            return reference
        }
    }

    // MARK: Mutations

    /// Positions of the members of the top-level object: (start, end) of each `"key":value`.
    static func members(_ line: [UInt8]) -> [Range<Int>]? {
        guard line.first == UInt8(ascii: "{"), line.last == UInt8(ascii: "}") else { return nil }
        var out: [Range<Int>] = []
        var start = 1
        var inString = false, escaped = false
        for i in 1..<(line.count - 1) {
            let c = line[i]
            if inString {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
            } else if c == UInt8(ascii: "\"") {
                inString = true
            } else if c == UInt8(ascii: ",") {
                out.append(start..<i)
                start = i + 1
            }
        }
        out.append(start..<(line.count - 1))
        return out
    }

    /// Ranges of the bytes inside string values (between the quotes), for escape mutations.
    static func stringValues(_ line: [UInt8]) -> [Range<Int>] {
        guard let members = members(line) else { return [] }
        return members.compactMap { m in
            guard let colon = line[m].firstIndex(of: UInt8(ascii: ":")), colon + 1 < m.upperBound,
                line[colon + 1] == UInt8(ascii: "\""), line[m.upperBound - 1] == UInt8(ascii: "\""),
                m.upperBound - 1 > colon + 2
            else { return nil }
            return (colon + 2)..<(m.upperBound - 1)
        }
    }

    static func escapeAlternatives(_ scalar: Unicode.Scalar, _ rng: inout Rng) -> [UInt8] {
        let v = scalar.value
        if v >= 0x10000 {
            let x = v - 0x10000
            let hi = 0xD800 + (x >> 10), lo = 0xDC00 + (x & 0x3FF)
            return Array(String(format: rng.chance(50) ? "\\u%04x\\u%04x" : "\\u%04X\\u%04X", hi, lo).utf8)
        }
        return Array(String(format: rng.chance(50) ? "\\u%04x" : "\\u%04X", v).utf8)
    }

    /// One random mutation of a canonical line.
    static func mutate(_ line: [UInt8], _ rng: inout Rng) -> (String, [UInt8]) {
        var out = line
        switch rng.below(16) {
        case 0:
            let i = rng.below(out.count)
            out[i] ^= UInt8(1) << UInt8(rng.below(8))
            return ("bit flip at \(i)", out)
        case 1:
            let i = rng.below(out.count + 1)
            out.insert([UInt8(ascii: " "), 0x0A, 0x09, 0x0D][rng.below(4)], at: i)
            return ("whitespace at \(i)", out)
        case 2:
            let i = rng.below(out.count)
            out.remove(at: i)
            return ("byte \(i) deleted", out)
        case 3:
            let i = rng.below(out.count)
            out[i] = UInt8(truncatingIfNeeded: rng.next())
            return ("byte \(i) replaced", out)
        case 4:  // swap two members (keys out of order)
            guard let m = members(line), m.count >= 2 else { return ("none", out) }
            let a = rng.below(m.count - 1), b = a + 1 + rng.below(m.count - a - 1)
            var parts = m.map { Array(line[$0]) }
            parts.swapAt(a, b)
            return ("members \(a) and \(b) swapped", [UInt8(ascii: "{")] + Array(parts.joined(separator: [UInt8(ascii: ",")])) + [UInt8(ascii: "}")])
        case 5:  // duplicate a member
            guard let m = members(line) else { return ("none", out) }
            let a = rng.below(m.count)
            out.insert(contentsOf: Array(line[m[a]]) + [UInt8(ascii: ",")], at: m[a].lowerBound)
            return ("member \(a) duplicated", out)
        case 6:  // drop a member
            guard let m = members(line), m.count >= 2 else { return ("none", out) }
            let a = rng.below(m.count - 1)
            out.removeSubrange(m[a].lowerBound..<(m[a].upperBound + 1))
            return ("member \(a) dropped", out)
        case 7, 8, 9:  // an alternative escape inside a string value
            let strings = stringValues(line)
            guard !strings.isEmpty else { return ("none", out) }
            let r = strings[rng.below(strings.count)]
            // Decode the value's first character at a random position (skip into escapes whole).
            var i = r.lowerBound + rng.below(r.count)
            while i > r.lowerBound, line[i] & 0xC0 == 0x80 { i -= 1 }
            if line[i] == UInt8(ascii: "\\") || (i > r.lowerBound && line[i - 1] == UInt8(ascii: "\\")) {
                // An existing escape: replace it by \u form (upper or lower case) or a short form.
                let start = line[i] == UInt8(ascii: "\\") ? i : i - 1
                let e = line[start + 1]
                let length = e == UInt8(ascii: "u") ? 6 : 2
                guard start + length <= r.upperBound else { return ("none", out) }
                let value: UInt32
                switch e {
                case UInt8(ascii: "n"): value = 0x0A
                case UInt8(ascii: "t"): value = 0x09
                case UInt8(ascii: "r"): value = 0x0D
                case UInt8(ascii: "b"): value = 0x08
                case UInt8(ascii: "f"): value = 0x0C
                case UInt8(ascii: "u"): value = UInt32(String(decoding: line[(start + 2)..<(start + 6)], as: UTF8.self), radix: 16) ?? 0
                default: value = UInt32(e)
                }
                let replacement: [UInt8]
                switch rng.below(3) {
                case 0: replacement = Array(String(format: "\\u%04X", value).utf8)
                case 1: replacement = Array(String(format: "\\u%04x", value).utf8)
                default:
                    let short: [UInt32: UInt8] = [0x0A: UInt8(ascii: "n"), 0x09: UInt8(ascii: "t"), 0x0D: UInt8(ascii: "r"), 0x08: UInt8(ascii: "b"), 0x0C: UInt8(ascii: "f"), 0x22: 0x22, 0x5C: 0x5C]
                    replacement = short[value].map { [UInt8(ascii: "\\"), $0] } ?? Array(String(format: "\\u%04x", value).utf8)
                }
                out.replaceSubrange(start..<(start + length), with: replacement)
                return ("escape at \(start) rewritten", out)
            }
            // A plain character: write it escaped (\/ for a slash, \uXXXX for anything).
            var length = 1
            if line[i] >= 0xF0 { length = 4 } else if line[i] >= 0xE0 { length = 3 } else if line[i] >= 0xC0 { length = 2 }
            guard i + length <= r.upperBound,
                let scalar = String(decoding: line[i..<(i + length)], as: UTF8.self).unicodeScalars.first
            else { return ("none", out) }
            let replacement = scalar == "/" && rng.chance(50) ? Array(#"\/"#.utf8) : escapeAlternatives(scalar, &rng)
            out.replaceSubrange(i..<(i + length), with: replacement)
            return ("character at \(i) escaped", out)
        case 10:  // a leading zero or a sign on an integer
            guard let m = members(line) else { return ("none", out) }
            let ints = m.filter { line[$0.upperBound - 1] != UInt8(ascii: "\"") }
            guard !ints.isEmpty else { return ("none", out) }
            let member = ints[rng.below(ints.count)]
            let colon = line[member].firstIndex(of: UInt8(ascii: ":"))!
            out.insert(["0", "-", "+", "00"][rng.below(4)].utf8.first!, at: colon + 1)
            return ("integer prefixed", out)
        case 11:  // a digest or hex in upper case
            guard let i = (0..<out.count).filter({ out[$0] >= UInt8(ascii: "a") && out[$0] <= UInt8(ascii: "f") }).randomElement(using: &rng)
            else { return ("none", out) }
            out[i] -= 32
            return ("byte \(i) upper-cased", out)
        case 13, 14:  // a plain character of a string value changed: still canonical
            let strings = stringValues(line)
            guard !strings.isEmpty else { return ("none", out) }
            let r = strings[rng.below(strings.count)]
            let i = r.lowerBound + rng.below(r.count)
            guard line[i] >= 0x20, line[i] < 0x7F, line[i] != 0x22, line[i] != 0x5C, i == r.lowerBound || line[i - 1] != 0x5C
            else { return ("none", out) }
            out[i] = Array("0123456789abcdefABC/+=".utf8)[rng.below(22)]
            return ("character at \(i) changed", out)
        case 12:  // cut the line
            let i = rng.below(out.count)
            return ("cut at \(i)", Array(out[..<i]))
        default:  // an unknown key, or a known key written twice with a different value
            guard let m = members(line) else { return ("none", out) }
            let at = m[rng.below(m.count)].lowerBound
            let extra = [#""extra":1,"#, #""seq":0,"#, #""text":"x","#, #""base64":"AA==","#, #""hash":"\#(String(repeating: "0", count: 64))","#][rng.below(5)]
            out.insert(contentsOf: Array(extra.utf8), at: at)
            return ("member inserted at \(at)", out)
        }
    }

    // MARK: Tests

    @Test func randomEventsAndMutationsAgree() {
        var rng = Rng(state: 0x1A7E_4F5)
        var tally = Tally()
        var fastAccepted = 0
        for n in 0..<1500 {
            var event = Self.randomEvent(&rng, seq: UInt64(n))
            var line = EventCodec.seal(&event)
            line.removeLast()
            let reference = Self.compare(line, "event \(n)", tally: &tally)
            if case .success = reference {
                fastAccepted += 1
                #expect(line.withUnsafeBytes { CanonicalLineDecoder(inline: .materialize).decodeCanonical($0) } != nil)
            }
            for m in 0..<12 {
                let (what, mutated) = Self.mutate(line, &rng)
                Self.compare(mutated, "event \(n) mutation \(m) (\(what))", tally: &tally)
                if let again = Self.rehashed(mutated) {
                    Self.compare(again, "event \(n) mutation \(m) (\(what), rehashed)", tally: &tally)
                }
            }
        }
        // The mix must exercise every outcome, and most encoder output must be accepted.
        #expect(fastAccepted > 900, "\(fastAccepted) of 1500 encoded events accepted")
        #expect(tally.accepted > 3000 && tally.malformed > 5000 && tally.nonCanonical > 2000 && tally.hashMismatch > 1000, "\(tally)")
    }

    /// Each alternative spelling the brief of §5 rules out, on a line that is otherwise right and
    /// correctly hashed: the reference says non-canonical, and so must the fast path.
    @Test func alternativeSpellingsAreNotCanonical() throws {
        var tally = Tally()
        let base = Event(
            seq: 7, time: Timestamp(nanoseconds: 1_800_000_000_123_456_789), operation: .write, path: "/etc/a b",
            mode: 0o644, size: 0, content: .inline([]), provenance: tester, previousHash: Digest(w0: 1, w1: 2, w2: 3, w3: 4))

        func line(_ event: Event) -> [UInt8] {
            var e = event
            var l = EventCodec.seal(&e)
            l.removeLast()
            return l
        }
        func expectProblem(_ l: [UInt8], _ expected: EventCodec.LineProblem?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let reference = Self.compare(l, what, tally: &tally, sourceLocation: sourceLocation)
            switch (reference, expected) {
            case (.success, nil): break
            case (.failure(let p), let e?) where p == e: break
            default: Issue.record("\(what): reference says \(reference), expected \(String(describing: expected))", sourceLocation: sourceLocation)
            }
        }
        func replacing(_ l: [UInt8], _ old: String, _ new: String) -> [UInt8] {
            let s = String(decoding: l, as: UTF8.self)
            precondition(s.contains(old), "\(old) not in \(s)")
            return Self.rehashed(Array(s.replacingOccurrences(of: old, with: new).utf8))!
        }

        var withText = base
        withText.content = .inline(Array("a/b\n\u{1F}\"\\é☕\u{7F}".utf8))
        withText.size = UInt64(Array("a/b\n\u{1F}\"\\é☕\u{7F}".utf8).count)
        let good = line(withText)
        expectProblem(good, nil, "the canonical line")
        #expect(String(decoding: good, as: UTF8.self).contains(#""text":"a/b\n\u001f\"\\é☕\#u{7F}""#))
        expectProblem(replacing(good, "a/b", #"a\/b"#), .nonCanonical, #"\/"#)
        expectProblem(replacing(good, "a/b", #"\u0061/b"#), .nonCanonical, #"\u0061"#)
        expectProblem(replacing(good, #"\n"#, #"\u000a"#), .nonCanonical, #"\u000a"#)
        expectProblem(replacing(good, #"\n"#, #"\u000A"#), .nonCanonical, #"\u000A"#)
        expectProblem(replacing(good, #"\u001f"#, #"\u001F"#), .nonCanonical, #"\u001F"#)
        expectProblem(replacing(good, "é", #"\u00e9"#), .nonCanonical, #"\u00e9"#)
        expectProblem(replacing(good, "\u{7F}", #"\u007f"#), .nonCanonical, #"\u007f"#)
        expectProblem(replacing(good, #"\""#, #"\u0022"#), .nonCanonical, #"\u0022"#)
        expectProblem(replacing(good, "/etc/a b", #"\/etc/a b"#), .nonCanonical, #"\/ in a path"#)
        expectProblem(replacing(good, #""op":"write""#, #""op":"wr\u0069te""#), .nonCanonical, "escaped op")
        expectProblem(replacing(good, #""mode":"0644""#, #""mode":"\u0030644""#), .nonCanonical, "escaped mode")
        expectProblem(replacing(good, #""proc":"tester""#, #""proc":"t\u0065ster""#), .nonCanonical, "escaped proc")
        expectProblem(replacing(good, "2027-01-15", #"2027-01-1\u0035"#), .nonCanonical, "escaped time")
        expectProblem(replacing(good, #"\u001f"#, "\u{1F}"), .malformed("bad text"), "raw control character")
        expectProblem(replacing(good, #""size":"#, #""size": "#), .malformed("bad size"), "a space")
        expectProblem(replacing(good, #""seq":7"#, #""seq":07"#), .malformed("bad seq"), "leading zero")

        // The same content as base64: the encoder writes text, so base64 is not canonical.
        let textBytes = Array("a/b\n\u{1F}\"\\é☕\u{7F}".utf8)
        var encoded: [UInt8] = []
        Base64.encode(textBytes, into: &encoded)
        let asBase64 = replacing(good, #""text":"a/b\n\u001f\"\\é☕\#u{7F}""#, #""base64":"\#(String(decoding: encoded, as: UTF8.self))""#)
        expectProblem(asBase64, .nonCanonical, "base64 for text")

        // Binary content: base64 is canonical; with non-zero pad bits, or as text with \u0000, it is not.
        var binary = base
        binary.content = .inline([0, 0xFF, 0x10, 0x80])  // "AP8QgA=="
        binary.size = 4
        let b = line(binary)
        expectProblem(b, nil, "binary as base64")
        expectProblem(replacing(b, "AP8QgA==", "AP8QgB=="), .nonCanonical, "non-zero pad bits (2 pads)")
        var three = base
        three.content = .inline([0, 0xFF, 0x10, 0x80, 0x81])  // "AP8QgIE="
        three.size = 5
        let t = line(three)
        expectProblem(t, nil, "5 bytes as base64")
        expectProblem(replacing(t, "AP8QgIE=", "AP8QgIF="), .nonCanonical, "non-zero pad bits (1 pad)")
        expectProblem(replacing(t, "AP8QgIE=", "AP8QgIE"), .malformed("bad base64"), "missing padding")
        expectProblem(replacing(t, "AP8QgIE=", #"AP8Qg\/E="#), .nonCanonical, #"\/ in base64"#)
        var nul = base
        nul.content = .inline(Array("a\u{0}b".utf8))
        nul.size = 3
        let n = line(nul)
        expectProblem(n, nil, "text with NUL as base64")
        #expect(String(decoding: n, as: UTF8.self).contains(#""base64":"YQBi""#))
        expectProblem(replacing(n, #""base64":"YQBi""#, #""text":"a\u0000b""#), .nonCanonical, #"text with \u0000"#)
        expectProblem(replacing(n, #""base64":"YQBi""#, #""text":"a\u0000""#), .malformed("size 3 does not match the inline content (2 bytes)"), "size mismatch")

        // Keys out of order, and hash not last.
        let s = String(decoding: good, as: UTF8.self)
        let swapped = s.replacingOccurrences(of: #""uid":1000,"gid":1000"#, with: #""gid":1000,"uid":1000"#)
        expectProblem(Self.rehashed(Array(swapped.utf8))!, .nonCanonical, "uid and gid swapped")

        // A proc the encoder would sanitize.
        var control = base
        control.provenance.process = "bad\u{1}name"
        expectProblem(line(control), .nonCanonical, "control character in proc")
        control.provenance.process = String(repeating: "x", count: 65)
        expectProblem(line(control), .nonCanonical, "65-byte proc")
        control.provenance.process = String(repeating: "x", count: 64)
        expectProblem(line(control), nil, "64-byte proc")

        // A wrong hash on a canonical line.
        var wrong = good
        let digit = wrong.count - 3
        wrong[digit] = wrong[digit] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let reference = Self.compare(wrong, "wrong hash", tally: &tally)
        guard case .failure(.hashMismatch) = reference else {
            Issue.record("a wrong hash gave \(reference)")
            return
        }
    }

    /// The examples of docs/FORMAT.md decode through the fast path.
    @Test func formatExamplesTakeTheFastPath() {
        var tally = Tally()
        for (i, line) in FormatVectorTests.exampleEvents.enumerated() {
            let bytes = Array(line.utf8)
            #expect(bytes.withUnsafeBytes { CanonicalLineDecoder(inline: .materialize).decodeCanonical($0) } != nil, "example \(i)")
            Self.compare(bytes, "example \(i)", tally: &tally)
        }
        #expect(tally.accepted == 12)
    }

    /// Digests parsed eight digits at a time against `Digest(hex:)`, on strings that are mostly
    /// hex with bytes at the edges of the ranges mixed in.
    @Test func digestParsingAgreesWithDigestHex() {
        var rng = Rng(state: 7)
        let edges: [UInt8] = Array("/09:`afgAF@".utf8) + [0x00, 0x7F, 0x80, 0xB0, 0xB9, 0xE1, 0xE6, 0xFF]
        let hex = Array("0123456789abcdef".utf8)
        for _ in 0..<50_000 {
            var digits = (0..<64).map { _ in hex[rng.below(16)] }
            if rng.chance(50) { digits[rng.below(64)] = edges[rng.below(edges.count)] }
            let quoted = [UInt8(ascii: "\"")] + digits + [UInt8(ascii: "\"")]
            var i = 0
            let fast = quoted.withUnsafeBufferPointer { CanonicalScan.digest($0.baseAddress!, &i, $0.count) }
            let reference = Digest(hex: String(decoding: digits, as: UTF8.self))
            #expect(fast == reference, "\(digits)")
            #expect(i == (fast == nil ? 0 : 66))
        }
    }

    /// The UTF-8 checks of the fast path against Swift's validation, on random byte strings biased
    /// towards the edges of the multi-byte ranges.
    @Test func utf8ValidationAgreesWithSwift() {
        var rng = Rng(state: 42)
        let interesting: [UInt8] = [0x00, 0x22, 0x5C, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF, 0x41]
        for _ in 0..<200_000 {
            let bytes: [UInt8] = (0..<rng.below(12)).map { _ in rng.chance(70) ? interesting[rng.below(interesting.count)] : UInt8(truncatingIfNeeded: rng.next()) }
            let swift = !bytes.contains(0) && String(validating: bytes, as: UTF8.self) != nil
            #expect(bytes.withUnsafeBufferPointer { CanonicalScan.isText($0) } == swift, "\(bytes)")
            #expect(EventCodec.isText(bytes) == swift)
            // As the body of a string value (escaping what JSON requires).
            var quoted: [UInt8] = [UInt8(ascii: "\"")]
            for b in bytes {
                switch b {
                case 0x22: quoted += [0x5C, 0x22]
                case 0x5C: quoted += [0x5C, 0x5C]
                case 0x08: quoted += Array(#"\b"#.utf8)
                case 0x09: quoted += Array(#"\t"#.utf8)
                case 0x0A: quoted += Array(#"\n"#.utf8)
                case 0x0C: quoted += Array(#"\f"#.utf8)
                case 0x0D: quoted += Array(#"\r"#.utf8)
                case 0..<0x20: quoted += Array(String(format: "\\u%04x", b).utf8)
                default: quoted.append(b)
                }
            }
            quoted += Array("\"}".utf8)
            let scanned = quoted.withUnsafeBufferPointer { CanonicalScan.string($0.baseAddress!, 0, $0.count) }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            #expect((scanned != nil) == valid, "\(bytes)")
            if let scanned { #expect(scanned.count == bytes.count && scanned.nul == bytes.contains(0)) }
        }
    }
}
