/// Parses the time expressions people type: `--at`, `--since`, `--until` on the command line, and the
/// directory names under `/@time/<name>/`.
///
/// Accepted forms (see `acceptedForms` for the text shown to users):
///
/// - RFC 3339 date-time with seconds, optional 1–9 fractional digits and optional offset:
///   `2026-11-21T09:11:38Z`, `2026-11-21T09:11:38.5+01:00`, `2026-11-21T09:11:38.123456789Z`,
///   `2026-11-21T09:11:38`. The separator may be `T`, `t` or one space; the offset `Z`, `z` or
///   `±HH:MM` (hours 00–23, minutes 00–59).
/// - Date and minutes, offset optional: `2026-11-21T09:11`, `2026-11-21 09:11+02:00`.
/// - A date alone: `2026-11-21` is 00:00:00 UTC that day.
/// - Unix epoch seconds, optionally negative, with up to 9 fractional digits, optionally prefixed
///   with `@` as in GNU `date`: `1763716298`, `1763716298.25`, `@1763716298`, `@-1.5`.
///   A string of digits alone is always epoch seconds (`2026` is 1970-01-01T00:33:46Z and
///   `20261121` is 1970-08-23, never a year or a compact date); leading zeros are allowed.
///
/// Choices:
///
/// - **No offset means UTC**, never the local time zone: a name under `/@time/` must mean the same
///   instant on every machine and for every user.
/// - **Leap seconds are rejected** (`:60`): timestamps are POSIX time, which has no leap seconds,
///   and clamping would silently give two spellings one instant. Hour `24` is rejected as well.
/// - **Negative epochs are accepted** when inside `Timestamp.minimum...Timestamp.maximum`
///   (1678-01-01 to 2261-12-31, UTC); `-1.5` is 1.5 seconds before the epoch, as GNU `date` reads it.
/// - Everything is strict: no surrounding whitespace, only ASCII digits (fullwidth or Arabic-Indic
///   digits are rejected), a four-digit year and two-digit fields, at most 64 bytes in total.
///   `Timestamp.canonical` is one of the accepted forms and round-trips exactly.
///
/// Parsing works on the UTF-8 bytes with checked arithmetic, in time bounded by the 64-byte limit,
/// so hostile input (huge digit strings, NUL bytes, a megabyte of text) is rejected without trapping.
public enum TimeExpression {
    /// The accepted forms with an example each, as listed in every `.badTime` error.
    public static let acceptedForms: String = """
        Accepted time forms (UTC unless an offset is given):
          2026-11-21T09:11:38Z                 RFC 3339 ('T', 't' or space; 'Z', 'z', +HH:MM, -HH:MM)
          2026-11-21T09:11:38.123456789+01:00  with 1 to 9 fractional digits and an offset
          2026-11-21T09:11:38                  no offset: UTC
          2026-11-21 09:11                     date and minutes (offset optional)
          2026-11-21                           a date alone: 00:00:00 UTC that day
          1763716298.25                        Unix epoch seconds, up to 9 fractional digits
          @1763716298                          the same, GNU date style (negative allowed: @-1.5)
        Supported range: 1678-01-01T00:00:00Z to 2261-12-31T23:59:59.999999999Z; no leap seconds.
        """

    /// Longer input is rejected before parsing. The longest date form is 35 bytes; epoch seconds may
    /// carry leading zeros up to this limit.
    static let maximumLength = 64

    /// Parses one time expression. Throws `LayerError(.badTime, ...)` for anything not accepted,
    /// with a message that quotes the (sanitized) input, says what is wrong, and lists `acceptedForms`.
    public static func parse(_ text: String) throws(LayerError) -> Timestamp {
        let count = text.utf8.count
        guard count > 0 else { throw rejection(text, "the expression is empty") }
        guard count <= maximumLength else {
            throw rejection(text, "longer than \(maximumLength) bytes (\(count) bytes)")
        }
        var parser = Parser(bytes: Array(text.utf8))
        switch parser.parse() {
        case .success(let value): return value
        case .failure(let failure): throw rejection(text, failure.reason)
        }
    }

    static func rejection(_ text: String, _ reason: String) -> LayerError {
        LayerError(.badTime, "bad time \"\(sanitized(text))\": \(reason).\n\(acceptedForms)")
    }

    /// Upper bound on the characters of input quoted in an error message.
    static let quotedLimit = 80

    /// The input as it may be shown in a message: printable ASCII kept (with `"` and `\` escaped),
    /// everything else escaped as `\n`, `\t`, `\0` or `\u{XXXX}` (so a fullwidth `２` cannot pass
    /// for a `2`, and no control or bidi character reaches a terminal), cut after `limit` Unicode
    /// scalars with `...` appended.
    static func sanitized(_ text: String, limit: Int = quotedLimit) -> String {
        var out = ""
        var taken = 0
        var truncated = false
        for scalar in text.unicodeScalars {
            if taken == limit {
                truncated = true
                break
            }
            taken += 1
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x00: out += "\\0"
            case 0x20...0x7E: out.unicodeScalars.append(scalar)
            default:
                out += "\\u{"
                out += String(scalar.value, radix: 16, uppercase: true)
                out += "}"
            }
        }
        if truncated { out += "..." }
        return out
    }
}

struct TimeExpressionFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

private let zero = UInt8(ascii: "0")

private struct Parser {
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    typealias Outcome = Result<Timestamp, TimeExpressionFailure>

    mutating func parse() -> Outcome {
        if bytes.count >= 5, bytes[0..<4].allSatisfy(isDigit), bytes[4] == UInt8(ascii: "-") {
            return parseDateTime()
        }
        return parseEpoch()
    }

    // MARK: helpers

    func isDigit(_ b: UInt8) -> Bool { b >= zero && b <= zero + 9 }
    var atEnd: Bool { index >= bytes.count }
    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func consume(_ ascii: Unicode.Scalar) -> Bool {
        guard let b = current, b == UInt8(ascii: ascii) else { return false }
        index += 1
        return true
    }

    /// Exactly `count` ASCII digits.
    mutating func fixedDigits(_ count: Int) -> Int? {
        guard index + count <= bytes.count else { return nil }
        var value = 0
        for i in index..<(index + count) {
            guard isDigit(bytes[i]) else { return nil }
            value = value * 10 + Int(bytes[i] - zero)
        }
        index += count
        return value
    }

    /// A run of ASCII digits (possibly empty): its length and, unless it overflowed, its value.
    mutating func digitRun() -> (length: Int, value: Int64?) {
        var value: Int64? = 0
        let start = index
        while let b = current, isDigit(b) {
            if let v = value {
                let (times10, o1) = v.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int64(b - zero))
                value = (o1 || o2) ? nil : sum
            }
            index += 1
        }
        return (index - start, value)
    }

    /// Fraction digits after a '.', scaled to nanoseconds. 1 to 9 digits.
    mutating func fraction() -> Result<Int64, TimeExpressionFailure> {
        let (length, value) = digitRun()
        guard length > 0, let value else {
            return .failure(.init("expected digits after '.'"))
        }
        guard length <= 9 else {
            return .failure(.init("\(length) fractional digits (at most 9: nanoseconds)"))
        }
        var scaled = value
        for _ in length..<9 { scaled *= 10 }
        return .success(scaled)
    }

    func describeCurrent() -> String {
        guard let b = current else { return "end of input" }
        if b >= 0x21 && b <= 0x7E { return "'\(String(decoding: [b], as: UTF8.self))'" }
        if b == 0x20 { return "a space" }
        if b < 0x80 { return "control byte 0x\(String(b, radix: 16, uppercase: true))" }
        return "a non-ASCII character"
    }

    func unexpected(_ expected: String) -> Outcome {
        .failure(.init("expected \(expected) at byte \(index + 1), found \(describeCurrent())"))
    }

    static let rangeText = "outside the supported range 1678-01-01T00:00:00Z to 2261-12-31T23:59:59.999999999Z"

    // MARK: date and time

    mutating func parseDateTime() -> Outcome {
        guard let year = fixedDigits(4) else { return unexpected("a four-digit year") }
        guard consume("-") else { return unexpected("'-'") }
        guard let month = fixedDigits(2) else { return unexpected("a two-digit month") }
        guard consume("-") else { return unexpected("'-' after the month") }
        guard let day = fixedDigits(2) else { return unexpected("a two-digit day") }
        guard (1...12).contains(month) else { return .failure(.init("month \(month) does not exist")) }
        let days = Civil.daysInMonth(year: year, month: month)
        guard (1...days).contains(day) else {
            return .failure(.init("day \(day) does not exist: \(pad(year, 4))-\(pad(month, 2)) has \(days) days"))
        }

        var hour = 0, minute = 0, second = 0
        var nanosecond: Int64 = 0
        var offset = 0
        var hasSeconds = false
        if !atEnd {
            guard consume("T") || consume("t") || consume(" ") else {
                return unexpected("'T', 't' or a space after the date")
            }
            guard let h = fixedDigits(2) else { return unexpected("a two-digit hour") }
            guard consume(":") else { return unexpected("':' after the hour") }
            guard let m = fixedDigits(2) else { return unexpected("a two-digit minute") }
            hour = h
            minute = m
            if consume(":") {
                guard let s = fixedDigits(2) else { return unexpected("two-digit seconds") }
                second = s
                hasSeconds = true
                if consume(".") {
                    switch fraction() {
                    case .success(let ns): nanosecond = ns
                    case .failure(let f): return .failure(f)
                    }
                }
            }
            guard hour <= 23 else { return .failure(.init("hour \(hour) out of range 00-23")) }
            guard minute <= 59 else { return .failure(.init("minute \(minute) out of range 00-59")) }
            if second == 60 {
                return .failure(.init("leap second :60 is not supported (POSIX time has none; use :59)"))
            }
            guard second <= 59 else { return .failure(.init("second \(second) out of range 00-59")) }

            if consume("Z") || consume("z") {
                // UTC.
            } else if let sign = current, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                index += 1
                guard let oh = fixedDigits(2) else { return unexpected("a two-digit offset hour") }
                guard consume(":") else { return unexpected("':' in the offset (+HH:MM or -HH:MM)") }
                guard let om = fixedDigits(2) else { return unexpected("two-digit offset minutes") }
                guard oh <= 23, om <= 59 else {
                    return .failure(.init("offset \(pad(oh, 2)):\(pad(om, 2)) out of range (at most 23:59 either way)"))
                }
                offset = (oh * 3600 + om * 60) * (sign == UInt8(ascii: "-") ? -1 : 1)
            } else if !atEnd {
                return unexpected(hasSeconds ? "'.', 'Z' or an offset" : "':', 'Z' or an offset")
            }
            guard atEnd else { return unexpected("end of input") }
        }

        guard let value = Timestamp(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second,
            nanosecond: Int(nanosecond), offsetSeconds: offset)
        else { return .failure(.init(Self.rangeText)) }
        return .success(value)
    }

    // MARK: epoch seconds

    mutating func parseEpoch() -> Outcome {
        _ = consume("@")
        let negative = consume("-")
        let (length, secondsValue) = digitRun()
        guard length > 0 else {
            return index == 0
                ? .failure(.init("neither a date (YYYY-MM-DD...) nor epoch seconds"))
                : unexpected("digits")
        }
        var fractionNanoseconds: Int64 = 0
        if consume(".") {
            switch fraction() {
            case .success(let ns): fractionNanoseconds = ns
            case .failure(let f): return .failure(f)
            }
        }
        guard atEnd else { return unexpected("a digit, '.' or end of input") }
        guard let seconds = secondsValue else { return .failure(.init(Self.rangeText)) }
        let (scaled, o1) = seconds.multipliedReportingOverflow(by: Timestamp.nanosecondsPerSecond)
        let (magnitude, o2) = scaled.addingReportingOverflow(fractionNanoseconds)
        guard !o1, !o2 else { return .failure(.init(Self.rangeText)) }
        let value = Timestamp(nanoseconds: negative ? -magnitude : magnitude)
        guard value >= Timestamp.minimum, value <= Timestamp.maximum else {
            return .failure(.init(Self.rangeText))
        }
        return .success(value)
    }
}

private func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
