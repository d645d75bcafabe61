// Command-line options shared by every subcommand (and passed on to child processes).

#if canImport(Glibc)
import Glibc
#endif

struct BenchOptions {
    /// CI-size smoke run: every benchmark shorter, the state sizes 10k and 100k.
    var quick = false
    /// Where temp stores and btrfs images go (must be on the disk to measure, not tmpfs).
    var base = "/var/tmp"
    /// Skip the loop-mounted btrfs parts even when root.
    var noBtrfs = false
    /// State benchmark: log sizes in events.
    var sizes: [Int]?
    /// State benchmark: measured queries per size.
    var queries: Int?
    /// Commit and seal benchmarks: seconds per measured run (overrides the defaults).
    var seconds: Double?
    /// Commit: writer counts for the throughput part (the first is the ratios' denominator).
    var writers: [Int] = [1, 2, 8]

    var stateSizes: [Int] { sizes ?? (quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]) }
    var stateQueries: Int { queries ?? (quick ? 500 : 2000) }
    var commitSeconds: Double { seconds ?? (quick ? 0.6 : 3) }
    /// Commit: interleaved rounds the time per writer count is split into.
    var commitRounds: Int { quick ? 4 : 10 }
    var sealSeconds: Double { seconds ?? (quick ? 2 : 10) }
    /// Single-writer latency samples: rounds x commits per round.
    var latencyRounds: Int { quick ? 2 : 5 }
    var latencyPerRound: Int { quick ? 100 : 200 }

    /// The flags to hand a child so it runs with the same settings.
    var childArguments: [String] {
        var a: [String] = []
        if quick { a.append("--quick") }
        a += ["--dir", base]
        if let seconds { a += ["--seconds", String(seconds)] }
        if writers != [1, 2, 8] { a += ["--writers", writers.map(String.init).joined(separator: ",")] }
        return a
    }

    static let usage = """
        usage: layerfs-bench <all|commit|state|seal> [options]

          all      run every benchmark below
          commit   group commit: appends/s with 1, 2, 8 writers; single-writer latency vs write(2)+fdatasync
          state    time travel at scale: open time, memory per event, query latency for 10k/100k/1M events
          seal     sealing does not stall writers: commit latency with background seals vs without

        options:
          --quick            CI-size smoke run (under a minute)
          --dir PATH         where temp stores and btrfs images go (default /var/tmp; must be a disk, not tmpfs)
          --no-btrfs         skip the loop-mounted btrfs parts (they need root and btrfs-progs)
          --sizes N,N,...    state: log sizes in events (default 10000,100000,1000000; quick: 10000,100000)
          --queries N        state: measured queries per size (default 2000; quick: 500)
          --seconds S        commit/seal: seconds per measured run (default 3 / 10; quick: 0.6 / 2)
          --writers N,N,...  commit: writer counts for the throughput part (default 1,2,8)
        """

    /// Parses options after the subcommand; returns nil (after printing why) on a bad one.
    static func parse(_ arguments: ArraySlice<String>) -> (BenchOptions, [String])? {
        var o = BenchOptions()
        var positional: [String] = []
        var it = arguments.makeIterator()
        func value(_ flag: String) -> String? {
            guard let v = it.next() else {
                print("layerfs-bench: \(flag) needs a value")
                return nil
            }
            return v
        }
        while let arg = it.next() {
            switch arg {
            case "--quick": o.quick = true
            case "--no-btrfs": o.noBtrfs = true
            case "--dir":
                guard let v = value(arg) else { return nil }
                o.base = v.count > 1 && v.hasSuffix("/") ? String(v.dropLast()) : v
            case "--sizes":
                guard let v = value(arg) else { return nil }
                let sizes = v.split(separator: ",").compactMap { Int($0.filter { $0 != "_" }) }
                guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1000 }) else {
                    print("layerfs-bench: --sizes wants numbers of events >= 1000, e.g. 10000,100000")
                    return nil
                }
                o.sizes = sizes
            case "--writers":
                guard let v = value(arg) else { return nil }
                let counts = v.split(separator: ",").compactMap { Int($0) }
                guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= 256 }) else { print("layerfs-bench: bad --writers"); return nil }
                o.writers = counts
            case "--queries":
                guard let v = value(arg), let n = Int(v), n > 0 else { print("layerfs-bench: bad --queries"); return nil }
                o.queries = n
            case "--seconds":
                guard let v = value(arg), let s = Double(v), s > 0 else { print("layerfs-bench: bad --seconds"); return nil }
                o.seconds = s
            case "-h", "--help":
                print(usage)
                exit(0)
            default:
                if arg.hasPrefix("--") {
                    print("layerfs-bench: unknown option \(arg)\n\n\(usage)")
                    return nil
                }
                positional.append(arg)
            }
        }
        return (o, positional)
    }
}
