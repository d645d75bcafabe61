import Testing

@testable import LayerCore

// Expected values cross-checked with GNU date, e.g. `date -u -d '2026-11-21T09:11:38.5+01:00' +%s%N`.

/// SplitMix64: a small deterministic generator so the random tests are reproducible.
private struct SeededGenerator: RandomNumberGenerator {
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

private func twoDigits(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

@Suite struct TimeExpressionTests {
    static let valid: [(String, Int64)] = [
        // RFC 3339 with seconds.
        ("2026-11-21T09:11:38Z", 1_795_252_298_000_000_000),
        ("2026-11-21t09:11:38z", 1_795_252_298_000_000_000),
        ("2026-11-21 09:11:38Z", 1_795_252_298_000_000_000),
        ("2026-11-21T09:11:38", 1_795_252_298_000_000_000),
        ("2026-11-21T09:11:38+00:00", 1_795_252_298_000_000_000),
        ("2026-11-21T09:11:38-00:00", 1_795_252_298_000_000_000),
        ("2026-11-21T09:11:38.5+01:00", 1_795_248_698_500_000_000),
        ("2026-11-21T09:11:38.1Z", 1_795_252_298_100_000_000),
        ("2026-11-21T09:11:38.123456789Z", 1_795_252_298_123_456_789),
        ("2026-11-21T09:11:38.000000001", 1_795_252_298_000_000_001),
        ("2026-11-21T09:11:38-23:59", 1_795_338_638_000_000_000),
        ("2026-11-21T09:11:38+23:59", 1_795_165_958_000_000_000),
        ("2024-02-29T12:34:56.789-07:30", 1_709_237_096_789_000_000),
        ("2000-01-01T00:00:00+14:00", 946_634_400_000_000_000),
        // Date and minutes.
        ("2026-11-21T09:11", 1_795_252_260_000_000_000),
        ("2026-11-21 09:11", 1_795_252_260_000_000_000),
        ("2026-11-21t09:11Z", 1_795_252_260_000_000_000),
        ("2026-11-21 09:11+02:00", 1_795_245_060_000_000_000),
        // A date alone.
        ("2026-11-21", 1_795_219_200_000_000_000),
        ("2024-02-29", 1_709_164_800_000_000_000),
        ("1970-01-01", 0),
        ("1900-03-01", -2_203_891_200_000_000_000),
        // Epoch seconds.
        ("1763716298", 1_763_716_298_000_000_000),
        ("1763716298.25", 1_763_716_298_250_000_000),
        ("@1763716298", 1_763_716_298_000_000_000),
        ("@1763716298.123456789", 1_763_716_298_123_456_789),
        ("0", 0),
        ("@0.000000001", 1),
        ("-1", -1_000_000_000),
        ("@-1.5", -1_500_000_000),
        ("-0.000000001", -1),
        // Digits alone are always epoch seconds, never a year or a compact date (documented).
        ("2026", 2_026_000_000_000),
        ("20261121", 20_261_121_000_000_000),
        ("0001763716298", 1_763_716_298_000_000_000),
        // The edges of the range.
        ("1678-01-01T00:00:00Z", -9_214_560_000_000_000_000),
        ("1677-12-31T23:30:00-00:30", -9_214_560_000_000_000_000),
        ("2261-12-31T23:59:59.999999999Z", 9_214_646_399_999_999_999),
        ("2262-01-01T00:59:59.999999999+01:00", 9_214_646_399_999_999_999),
        ("-9214560000", -9_214_560_000_000_000_000),
        ("9214646399.999999999", 9_214_646_399_999_999_999),
    ]

    @Test(arguments: valid)
    func parsesValidForms(_ text: String, _ expected: Int64) throws {
        #expect(try TimeExpression.parse(text) == Timestamp(nanoseconds: expected))
    }

    @Test func rangeEdgesAreTimestampBounds() throws {
        #expect(try TimeExpression.parse("1678-01-01") == Timestamp.minimum)
        #expect(try TimeExpression.parse("2261-12-31T23:59:59.999999999Z") == Timestamp.maximum)
    }

    @Test func canonicalFormRoundTripsAcrossTheRange() throws {
        var rng = SeededGenerator(seed: 0x1A7E_5F00_2026_1121)
        var samples: [Timestamp] = [.minimum, .maximum, Timestamp(nanoseconds: 0), Timestamp(nanoseconds: -1)]
        for _ in 0..<5_000 {
            samples.append(Timestamp(nanoseconds: Int64.random(
                in: Timestamp.minimum.nanoseconds...Timestamp.maximum.nanoseconds, using: &rng)))
        }
        for t in samples {
            let text = t.canonical
            #expect(text.utf8.count == 30)
            #expect(try TimeExpression.parse(text) == t, "\(text)")
            #expect(Timestamp(canonical: text) == t, "\(text)")
        }
    }

    /// Random calendar fields written out in every accepted spelling must agree with
    /// `Timestamp(year:...)`, and epoch seconds must agree with the nanosecond count.
    @Test func randomSpellingsAgreeWithCalendarFields() throws {
        var rng = SeededGenerator(seed: 42)
        var checked = 0
        while checked < 3_000 {
            let year = Int.random(in: 1678...2261, using: &rng)
            let month = Int.random(in: 1...12, using: &rng)
            let day = Int.random(in: 1...Civil.daysInMonth(year: year, month: month), using: &rng)
            let hour = Int.random(in: 0...23, using: &rng)
            let minute = Int.random(in: 0...59, using: &rng)
            let second = Int.random(in: 0...59, using: &rng)
            let digits = Int.random(in: 1...9, using: &rng)
            var fraction = ""
            for _ in 0..<digits { fraction += String(Int.random(in: 0...9, using: &rng)) }
            var nanos = Int(fraction)!
            for _ in digits..<9 { nanos *= 10 }
            let offsetMinutes = Int.random(in: -(23 * 60 + 59)...(23 * 60 + 59), using: &rng)
            let sign = offsetMinutes < 0 ? "-" : "+"
            let offsetText = "\(sign)\(twoDigits(abs(offsetMinutes) / 60)):\(twoDigits(abs(offsetMinutes) % 60))"
            guard let expected = Timestamp(
                year: year, month: month, day: day, hour: hour, minute: minute, second: second,
                nanosecond: nanos, offsetSeconds: offsetMinutes * 60)
            else { continue }  // The offset pushed it just outside the range.
            let separator = ["T", "t", " "].randomElement(using: &rng)!
            let date = "\(year)-\(twoDigits(month))-\(twoDigits(day))"
            let time = "\(twoDigits(hour)):\(twoDigits(minute)):\(twoDigits(second))"
            let text = "\(date)\(separator)\(time).\(fraction)\(offsetText)"
            #expect(try TimeExpression.parse(text) == expected, "\(text)")

            let utc = Timestamp(year: year, month: month, day: day, hour: hour, minute: minute, second: second, nanosecond: nanos)!
            #expect(try TimeExpression.parse("\(date)T\(time).\(fraction)") == utc)
            #expect(try TimeExpression.parse("\(date)T\(time).\(fraction)Z") == utc)

            let epoch = expected.seconds
            let sub = expected.subsecondNanoseconds
            if epoch >= 0 {
                var subText = String(sub)
                subText = String(repeating: "0", count: 9 - subText.count) + subText
                #expect(try TimeExpression.parse("@\(epoch).\(subText)") == expected)
            }
            #expect(try TimeExpression.parse("\(epoch)") == Timestamp(nanoseconds: epoch * 1_000_000_000))
            checked += 1
        }
    }

    static let hostile: [String] = [
        // Empty and whitespace.
        "", " ", "\t", "\n", "   ", " 2026-11-21", "2026-11-21 ", "2026-11-21T09:11:38Z\n", " 1763716298",
        // Truncated or malformed structure.
        "2026-", "2026-11", "2026-11-21T", "2026-11-21T09", "2026-11-21T09:",
        "2026-11-21T09:1", "2026-11-21T9:11", "2026-1-21", "2026-11-1", "26-11-21", "20261-11-21",
        "2026/11/21", "2026-11-21_09:11", "2026-11-21  09:11", "2026-11-21T09:11:3", "2026-11-21T09:11.5",
        "2026-11-21Z", "2026-11-21T09:11:38ZZ", "2026-11-21T09:11:38Z+01:00", "2026-11-21T09:11:38 Z",
        "2026-11-21T09:11:38,5Z", "2026-11-21T09:11:38.Z", "2026-11-21T09:11:38.",
        // Invalid dates and times.
        "2026-02-30", "2023-02-29", "1900-02-29", "2026-13-01", "2026-00-10", "2026-11-00", "2026-11-31",
        "2026-11-21T24:00", "2026-11-21T24:00:00Z", "2026-11-21T09:60", "2026-11-21T09:11:60Z",
        "2016-12-31T23:59:60Z", "2026-11-21T09:11:99",
        // Fractions: too many digits.
        "2026-11-21T09:11:38.1234567890Z", "1763716298.1234567890", "@0.0000000000",
        // Offsets.
        "2026-11-21T09:11:38+24:00", "2026-11-21T09:11:38-24:00", "2026-11-21T09:11:38+01:60",
        "2026-11-21T09:11:38+0100", "2026-11-21T09:11:38+01", "2026-11-21T09:11:38+1:00", "2026-11-21T09:11:38UTC",
        "2026-11-21T09:11:38+99:99",
        // Outside Timestamp's range.
        "1677-12-31T23:59:59.999999999Z", "2262-01-01T00:00:00Z", "0000-01-01", "9999-12-31",
        "1678-01-01T00:00:00+00:01", "2261-12-31T23:59:59.999999999-00:01", "9214646400", "-9214560000.000000001",
        "-9223372036.854775808", "9223372036.854775807", "9223372036854775807", "9223372036854775808",
        "99999999999999999999999999", "-99999999999999999999999999", String(repeating: "9", count: 64),
        // Epoch syntax.
        "@", "@-", "-", "--1", "@@1", "-@1", ".", ".5", "1.", "@.5", "+1", "1e9", "0x10", "1_000", "1,5",
        "1 ", "1.5.5", "1-2", "now", "yesterday", "Z",
        // NUL and control bytes.
        "\u{0}", "1763716298\u{0}", "17637\u{0}16298", "2026-11-21T09:11:38Z\u{0}", "2026-11-21\u{0}",
        "\u{7F}", "\u{1B}[31m",
        // Non-ASCII digits and other scalars.
        "\u{661}\u{667}\u{666}\u{663}\u{667}\u{661}\u{666}\u{662}\u{669}\u{668}",  // Arabic-Indic
        "\u{FF11}\u{FF17}\u{FF16}\u{FF13}\u{FF17}\u{FF11}\u{FF16}\u{FF12}\u{FF19}\u{FF18}",  // fullwidth
        "\u{FF12}\u{FF10}\u{FF12}\u{FF16}-11-21", "2026-\u{0967}\u{0967}-21", "2026-11-21T09\u{FF1A}11",
        "\u{1F570}\u{FE0F}", "2026-11-21T09:11:38Z\u{1F642}", "2026-11-21\u{301}", "\u{202E}2026-11-21",
        "2026\u{2010}11\u{2010}21", "1763716298\u{2024}25", "\u{FEFF}1763716298",
    ]

    @Test(arguments: hostile)
    func rejectsHostileInput(_ text: String) {
        let error = #expect(throws: LayerError.self) { try TimeExpression.parse(text) }
        #expect(error?.code == .badTime)
        #expect(error?.posixErrno == LayerError(.invalidArgument, "").posixErrno)
    }

    @Test func rejectsMegabyteInputsQuicklyAndQuotesAShortPrefix() {
        let inputs = [
            String(repeating: "9", count: 1 << 20),
            "2026-11-21" + String(repeating: " ", count: 1 << 20),
            String(repeating: "\u{1F642}", count: 1 << 18),
            String(repeating: "\u{0}", count: 1 << 20),
        ]
        for text in inputs {
            let error = #expect(throws: LayerError.self) { try TimeExpression.parse(text) }
            #expect(error?.code == .badTime)
            #expect(error?.message.contains("\(text.utf8.count) bytes") == true)
            #expect((error?.message.utf8.count ?? .max) < 2_500)
        }
    }

    @Test func errorQuotesTheInputAndListsEveryAcceptedForm() throws {
        let error = #expect(throws: LayerError.self) { try TimeExpression.parse("next tuesday") }
        let message = try #require(error?.message)
        #expect(message.contains("\"next tuesday\""))
        #expect(message.contains(TimeExpression.acceptedForms))
        for example in [
            "2026-11-21T09:11:38Z", "2026-11-21T09:11:38.123456789+01:00", "2026-11-21T09:11:38",
            "2026-11-21 09:11", "2026-11-21 ", "1763716298.25", "@1763716298", "UTC",
        ] {
            #expect(TimeExpression.acceptedForms.contains(example), "\(example)")
        }
        // Every example in the list parses.
        for line in TimeExpression.acceptedForms.split(separator: "\n").dropFirst() {
            guard line.hasPrefix("  ") else { continue }
            let example = line.dropFirst(2).split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
            _ = try TimeExpression.parse(example)
        }
        _ = try TimeExpression.parse("2026-11-21 09:11")
    }

    @Test func errorsSayWhatIsWrong() {
        func reason(_ text: String) -> String {
            do throws(LayerError) {
                _ = try TimeExpression.parse(text)
                return "(accepted)"
            } catch {
                return String(error.message.split(separator: "\n").first ?? "")
            }
        }
        #expect(reason("2026-02-30").contains("2026-02 has 28 days"))
        #expect(reason("2026-13-01").contains("month 13"))
        #expect(reason("2026-11-21T24:00").contains("hour 24"))
        #expect(reason("2026-11-21T09:60").contains("minute 60"))
        #expect(reason("2016-12-31T23:59:60Z").contains("leap second"))
        #expect(reason("2026-11-21T09:11:38.1234567890Z").contains("10 fractional digits"))
        #expect(reason("2026-11-21T09:11:38+24:00").contains("offset 24:00"))
        #expect(reason("2262-01-01").contains("outside the supported range"))
        #expect(reason("99999999999999999999999999").contains("outside the supported range"))
        #expect(reason("").contains("empty"))
    }

    @Test func sanitizedQuotesEscapeAndTruncate() {
        #expect(TimeExpression.sanitized("a\u{0}b\n\"\\") == #"a\0b\n\"\\"#)
        #expect(TimeExpression.sanitized("\u{FF11}\u{1B}\u{202E}") == #"\u{FF11}\u{1B}\u{202E}"#)
        let long = String(repeating: "x", count: 200)
        #expect(TimeExpression.sanitized(long) == String(repeating: "x", count: 80) + "...")
        #expect(TimeExpression.sanitized(String(repeating: "x", count: 80)) == String(repeating: "x", count: 80))
        let error = #expect(throws: LayerError.self) { try TimeExpression.parse("2026-11-21\u{0}\u{1B}[2J") }
        #expect(error?.message.contains(#""2026-11-21\0\u{1B}[2J""#) == true)
        #expect(error?.message.contains("\u{0}") == false)
        #expect(error?.message.contains("\u{1B}") == false)
    }
}

@Suite struct TimestampFormatTests {
    static let known: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-1_500_000_000, "1969-12-31T23:59:58.500000000Z"),
        (-86_400_000_000_000, "1969-12-31T00:00:00.000000000Z"),
        (1_709_164_800_000_000_000, "2024-02-29T00:00:00.000000000Z"),
        (1_709_251_199_999_999_999, "2024-02-29T23:59:59.999999999Z"),
        (1_709_251_200_000_000_000, "2024-03-01T00:00:00.000000000Z"),
        (1_795_252_298_123_456_789, "2026-11-21T09:11:38.123456789Z"),
        (-2_203_891_200_000_000_000, "1900-03-01T00:00:00.000000000Z"),
        (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
        (-9_214_560_000_000_000_000, "1678-01-01T00:00:00.000000000Z"),
        (9_214_646_399_999_999_999, "2261-12-31T23:59:59.999999999Z"),
    ]

    @Test(arguments: known)
    func canonicalFormatting(_ nanoseconds: Int64, _ text: String) {
        let t = Timestamp(nanoseconds: nanoseconds)
        #expect(t.canonical == text)
        #expect(t.description == text)
        #expect(Timestamp(canonical: text) == t)
    }

    @Test func minimumAndMaximum() {
        #expect(Timestamp.minimum.canonical == "1678-01-01T00:00:00.000000000Z")
        #expect(Timestamp.maximum.canonical == "2261-12-31T23:59:59.999999999Z")
        #expect(Timestamp.minimum.nanoseconds == -9_214_560_000_000_000_000)
        #expect(Timestamp.maximum.nanoseconds == 9_214_646_399_999_999_999)
        #expect(Timestamp(year: 1677, month: 12, day: 31, hour: 23, minute: 59, second: 59, nanosecond: 999_999_999) == nil)
        #expect(Timestamp(year: 2262, month: 1, day: 1) == nil)
        #expect(Timestamp(year: 1678, month: 1, day: 1) == .minimum)
    }

    @Test func civilFieldsOfNegativeInstants() {
        let t = Timestamp(nanoseconds: -1)
        #expect(t.seconds == -1)
        #expect(t.subsecondNanoseconds == 999_999_999)
        let c = t.civil
        #expect(c.year == 1969 && c.month == 12 && c.day == 31)
        #expect(c.hour == 23 && c.minute == 59 && c.second == 59 && c.nanosecond == 999_999_999)
    }

    @Test func fieldInitializerRejectsBadFields() {
        #expect(Timestamp(year: 2026, month: 2, day: 29) == nil)
        #expect(Timestamp(year: 2024, month: 2, day: 29) != nil)
        #expect(Timestamp(year: 2026, month: 13, day: 1) == nil)
        #expect(Timestamp(year: 2026, month: 1, day: 1, hour: 24) == nil)
        #expect(Timestamp(year: 2026, month: 1, day: 1, minute: 60) == nil)
        #expect(Timestamp(year: 2026, month: 1, day: 1, second: 60) == nil)
        #expect(Timestamp(year: 2026, month: 1, day: 1, nanosecond: 1_000_000_000) == nil)
        #expect(Timestamp(year: 2026, month: 1, day: 1, nanosecond: -1) == nil)
    }

    static let nearMisses: [String] = [
        "", "1970-01-01T00:00:00.000000000z", "1970-01-01t00:00:00.000000000Z", "1970-01-01 00:00:00.000000000Z",
        "1970-01-01T00:00:00.00000000Z", "1970-01-01T00:00:00.0000000000Z", "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:00.000000000+00:00", "1970-01-01T00:00:00.000000000", "1970-01-01T00:00:00,000000000Z",
        "1970-01-01T00:00:00.000000000Z ", " 1970-01-01T00:00:00.000000000Z", "1970-01-01T00:00:00.000000000Z\n",
        "1970-13-01T00:00:00.000000000Z", "2023-02-29T00:00:00.000000000Z", "1970-01-32T00:00:00.000000000Z",
        "1970-01-01T24:00:00.000000000Z", "1970-01-01T00:60:00.000000000Z", "1970-01-01T00:00:60.000000000Z",
        "1677-12-31T23:59:59.999999999Z", "2262-01-01T00:00:00.000000000Z", "0000-00-00T00:00:00.000000000Z",
        "1970-01-01T00:00:00.00000000\u{0}Z", "1970-01-01T00:00:00.-00000000Z", "1970-01-01T00:00:00.+00000000Z",
        "1970/01/01T00:00:00.000000000Z", "1970-01-01T00-00-00.000000000Z", "197\u{FF10}-01-01T00:00:00.00000000Z",
        "0", "@0",
    ]

    @Test(arguments: nearMisses)
    func canonicalParserRejectsNearMisses(_ text: String) {
        #expect(Timestamp(canonical: text) == nil)
    }

    @Test func canonicalOrderIsTimeOrder() {
        var rng = SeededGenerator(seed: 7)
        let samples = (0..<2_000).map { _ in
            Timestamp(nanoseconds: Int64.random(
                in: Timestamp.minimum.nanoseconds...Timestamp.maximum.nanoseconds, using: &rng))
        }
        let byTime = samples.sorted().map(\.canonical)
        let byText = samples.map(\.canonical).sorted()
        #expect(byTime == byText)
    }
}
