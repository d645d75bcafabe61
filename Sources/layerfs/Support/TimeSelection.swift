import ArgumentParser
import LayerCore

/// Parsing `--at`, `--since`, `--until` (any `TimeExpression` form) and `--seq`.
enum TimeArgument {
    /// Parses a time option. A bad time is a usage error (64) whose message says what is wrong
    /// and lists the accepted forms.
    static func parse(_ text: String, option: String) throws(CLIError) -> Timestamp {
        do {
            return try TimeExpression.parse(text)
        } catch {
            throw CLIError("\(option): \(error.message)", status: .usage)
        }
    }
}

/// `--at T | --seq N`: one state of the store.
struct StateSelection: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Show the state at this time (the last event at or before it). Any accepted time form: see the discussion.",
            valueName: "time"))
    var at: String?

    @Option(help: ArgumentHelp("Show the state right after event <seq> (0 is the genesis event).", valueName: "seq"))
    var seq: UInt64?

    func validate() throws {
        switch (at, seq) {
        case (nil, nil): throw ValidationError("Give exactly one of --at <time> or --seq <seq>.")
        case (.some, .some): throw ValidationError("--at and --seq cannot be used together: give exactly one.")
        default: break
        }
    }

    /// The sequence number selected, checked against the store.
    func resolve(in store: Store) throws(CLIError) -> UInt64 {
        if let seq {
            let head = store.headSequence
            guard seq <= head else {
                throw CLIError("event \(seq) does not exist: the log ends at event \(head)", status: .failure)
            }
            return seq
        }
        let time = try TimeArgument.parse(at!, option: "--at")
        do {
            return try store.sequence(at: time)
        } catch {
            let first = (try? store.time(ofSequence: 0)).map { " (the genesis event is at \($0.canonical))" } ?? ""
            throw CLIError("--at \(time.canonical) is before the store's first event\(first)", status: .failure)
        }
    }
}

enum HelpText {
    /// `TimeExpression.acceptedForms` laid out for an 80-column help screen: when a table row is
    /// too wide, every row puts its description on the next line instead of being wrapped
    /// mid-sentence.
    static var acceptedTimeForms: String {
        let lines = TimeExpression.acceptedForms.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.contains(where: { $0.count > 78 }) else { return TimeExpression.acceptedForms }
        var out: [String] = []
        for line in lines {
            guard line.hasPrefix("  "), let gap = line.dropFirst(2).firstRange(of: "  ") else {
                out.append(String(line))
                continue
            }
            out.append(String(line[..<gap.lowerBound]))
            out.append("      " + line[gap.upperBound...].drop { $0 == " " })
        }
        return out.joined(separator: "\n")
    }
}
