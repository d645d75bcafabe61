#if canImport(Glibc)
import Glibc
#endif

/// An instant with nanosecond precision: nanoseconds since the Unix epoch, UTC.
///
/// Its canonical text form, used in the log and as directory names under `/@time/`, is RFC 3339 in
/// UTC with exactly nine fractional digits: `2026-11-21T09:11:38.123456789Z`. That form sorts
/// lexicographically in time order.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.nanoseconds < b.nanoseconds }

    /// The current wall-clock time (CLOCK_REALTIME).
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(nanoseconds: Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec))
    }

    public static let nanosecondsPerSecond: Int64 = 1_000_000_000
    /// 1678-01-01T00:00:00Z and 2261-12-31T23:59:59.999999999Z: the whole years that nanoseconds in
    /// a signed 64-bit integer can hold. Times outside are rejected, never wrapped.
    public static let minimum = Timestamp(nanoseconds: Civil.daysFromCivil(year: 1678, month: 1, day: 1) * 86_400 * 1_000_000_000)
    public static let maximum = Timestamp(nanoseconds: (Civil.daysFromCivil(year: 2262, month: 1, day: 1) * 86_400 - 1) * 1_000_000_000 + 999_999_999)

    public var seconds: Int64 { nanoseconds.floorDiv(Self.nanosecondsPerSecond) }
    public var subsecondNanoseconds: Int64 { nanoseconds.floorMod(Self.nanosecondsPerSecond) }

    /// Builds a timestamp from UTC calendar fields. Returns nil when a field is out of range or the
    /// result is outside `minimum...maximum`.
    public init?(
        year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0,
        nanosecond: Int = 0, offsetSeconds: Int = 0
    ) {
        guard (1677...2262).contains(year), (1...12).contains(month),
            (1...Civil.daysInMonth(year: year, month: month)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second),
            (0...999_999_999).contains(nanosecond), (-86_400...86_400).contains(offsetSeconds)
        else { return nil }
        let days = Civil.daysFromCivil(year: year, month: month, day: day)
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        let (ns, overflow) = secs.multipliedReportingOverflow(by: Self.nanosecondsPerSecond)
        guard !overflow else { return nil }
        let (total, overflow2) = ns.addingReportingOverflow(Int64(nanosecond))
        guard !overflow2 else { return nil }
        let value = Timestamp(nanoseconds: total)
        guard value >= Self.minimum, value <= Self.maximum else { return nil }
        self = value
    }

    /// UTC calendar fields of this instant.
    public var civil: (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, nanosecond: Int) {
        let secs = seconds
        let days = secs.floorDiv(86_400)
        let rem = Int(secs.floorMod(86_400))
        let (y, m, d) = Civil.civilFromDays(days)
        return (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60, Int(subsecondNanoseconds))
    }

    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, exactly 30 bytes.
    public var canonical: String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(30)
        appendCanonical(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { canonical }

    func appendCanonical(to out: inout [UInt8]) {
        let c = civil
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(v / divisor))
                v %= divisor
                divisor /= 10
            }
        }
        digits(c.year, 4); out.append(UInt8(ascii: "-"))
        digits(c.month, 2); out.append(UInt8(ascii: "-"))
        digits(c.day, 2); out.append(UInt8(ascii: "T"))
        digits(c.hour, 2); out.append(UInt8(ascii: ":"))
        digits(c.minute, 2); out.append(UInt8(ascii: ":"))
        digits(c.second, 2); out.append(UInt8(ascii: "."))
        digits(c.nanosecond, 9); out.append(UInt8(ascii: "Z"))
    }

    /// Parses exactly the canonical form (30 bytes). Anything else returns nil.
    public init?(canonical text: String) {
        var text = text
        guard let value = text.withUTF8({ Timestamp(canonicalBytes: UnsafeRawBufferPointer($0)) })
        else { return nil }
        self = value
    }

    init?(canonicalBytes b: UnsafeRawBufferPointer) {
        guard b.count == 30, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
            b[19] == UInt8(ascii: "."), b[29] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            var v = 0
            for i in start..<(start + count) {
                let d = Int(b[i]) - 48
                guard d >= 0, d <= 9 else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard let y = number(0, 4), let mo = number(5, 2), let d = number(8, 2),
            let h = number(11, 2), let mi = number(14, 2), let s = number(17, 2),
            let ns = number(20, 9),
            let value = Timestamp(year: y, month: mo, day: d, hour: h, minute: mi, second: s, nanosecond: ns)
        else { return nil }
        self = value
    }
}

/// Proleptic Gregorian calendar arithmetic (days since 1970-01-01), after Howard Hinnant's
/// public-domain `days_from_civil` / `civil_from_days` algorithms.
enum Civil {
    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
    func floorMod(_ d: Int64) -> Int64 {
        let r = self % d  // not self - floorDiv(d) * d: that product overflows near Int64.min
        return (r != 0 && (r < 0) != (d < 0)) ? r + d : r
    }
}
