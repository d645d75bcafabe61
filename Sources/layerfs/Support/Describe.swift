import LayerCore

/// Text for people: errors with their context, paths safe for a terminal, modes, sizes.
enum Describe {
    /// `store S, event N, P: message`, leaving out what the message already says (LayerCore
    /// messages often begin with "event N: ..." or quote the path).
    static func error(_ error: LayerError) -> String {
        var parts: [String] = []
        if let store = error.store, !error.message.contains("store \(store)") { parts.append("store \(text(store))") }
        if let sequence = error.sequence, !error.message.hasPrefix("event \(sequence)") {
            parts.append("event \(sequence)")
        }
        // A path quoted in the message is not repeated (short ones like "/" always are: too
        // likely to appear in the message by chance).
        if let path = error.path, path.count < 4 || !error.message.contains(path) { parts.append(text(path)) }
        // Each line escaped on its own: multi-line messages (a bad time lists the accepted forms)
        // keep their line breaks, and nothing else reaches the terminal raw.
        let message = error.message.split(separator: "\n", omittingEmptySubsequences: false)
            .map { text(String($0)) }.joined(separator: "\n")
        return parts.isEmpty ? message : "\(parts.joined(separator: ", ")): \(message)"
    }

    /// A path or name for a terminal: control characters escaped (`\n`, `\t`, `\u{1B}`), so a
    /// name holding escape sequences cannot rewrite the screen; other characters kept.
    static func text(_ value: String) -> String {
        guard value.unicodeScalars.contains(where: needsEscape) else { return value }
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where needsEscape(scalar):
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v)
            || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
    }

    /// Permission bits as four octal digits: `0644`.
    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// `ls -l` style: kind letter and rwx triplets with setuid/setgid/sticky (`drwxr-xr-x`).
    static func modeString(_ kind: NodeKind, _ mode: UInt32) -> String {
        var out: [Character] = [kind == .directory ? "d" : kind == .symlink ? "l" : "-"]
        let bits: [(UInt32, Character)] = [
            (0o400, "r"), (0o200, "w"), (0o100, "x"), (0o040, "r"), (0o020, "w"), (0o010, "x"),
            (0o004, "r"), (0o002, "w"), (0o001, "x"),
        ]
        for (bit, letter) in bits { out.append(mode & bit != 0 ? letter : "-") }
        func special(_ flag: UInt32, _ index: Int, _ set: Character, _ setWithoutExec: Character) {
            if mode & flag != 0 { out[index] = out[index] == "x" ? set : setWithoutExec }
        }
        special(0o4000, 3, "s", "S")
        special(0o2000, 6, "s", "S")
        special(0o1000, 9, "t", "T")
        return String(out)
    }

    /// `12345 bytes (12.1 KiB)`, or just `512 bytes`.
    static func size(_ bytes: UInt64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = -1
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit >= 0 else { return "\(bytes) bytes" }
        let tenths = Int((value * 10).rounded())
        return "\(bytes) bytes (\(tenths / 10).\(tenths % 10) \(units[unit]))"
    }

    static func plural(_ count: some BinaryInteger, _ singular: String, _ pluralForm: String? = nil) -> String {
        "\(count) \(count == 1 ? singular : pluralForm ?? singular + "s")"
    }
}
