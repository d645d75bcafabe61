// layerfs-bench: reproducible benchmarks of LayerCore (bench/README.md).
//
//     swift run -c release layerfs-bench all [--quick] [--dir /var/tmp]
//
// Benchmarks print figures and their ratio to a baseline measured in the same run; they never
// assert. Measurements that touch a loop-mounted btrfs, and every measurement of memory, run in a
// child process (this binary, with a hidden `_`-subcommand), so the parent can always unmount and
// the child's RSS holds nothing else.

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

func machineSummary(_ o: BenchOptions) -> [String] {
    let kernel = (try? readTextFile("/proc/sys/kernel/osrelease"))?.split(separator: "\n").first.map(String.init) ?? "?"
    let memTotal = (try? readTextFile("/proc/meminfo"))?.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
        .map { (Double(String($0.filter(\.isNumber))) ?? 0) * 1024 } ?? 0
    let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
    return [
        "cores \(cores), RAM \(bytesText(memTotal)), kernel \(kernel)",
        "--dir \(o.base): \(fileSystemType(o.base)); running as \(geteuid() == 0 ? "root" : "uid \(geteuid())")",
        "mode: \(o.quick ? "--quick (CI smoke run: shorter runs, fewer samples, sizes up to 100k)" : "full")",
    ]
}

func main() -> Int32 {
    let args = CommandLine.arguments
    guard args.count >= 2 else {
        print(BenchOptions.usage)
        return 2
    }
    let command = args[1]
    if ["-h", "--help", "help"].contains(command) {
        print(BenchOptions.usage)
        return 0
    }
    guard let (options, positional) = BenchOptions.parse(args[2...]) else { return 2 }

    // Hidden subcommands: what a parent runs in a child process.
    if command.hasPrefix("_") && command != "_generate" { exitWithParent() }
    do {
        switch command {
        case "_commit-fs":
            guard positional.count == 2 else { return 2 }
            try CommitBench.runOn(directory: positional[0], label: positional[1], options)
            return 0
        case "_seal-fs":
            guard positional.count == 2 else { return 2 }
            try SealBench.runOn(directory: positional[0], label: positional[1], options)
            return 0
        case "_generate":  // for profiling by hand: _generate <new store path> <events>
            guard positional.count == 2, let events = Int(positional[1]) else { return 2 }
            let g = try StateBench.generate(at: positional[0], events: events, seed: UInt64(events))
            print("generated \(g.events) events, \(g.bytes) bytes in \(fixed(g.seconds, 2)) s: \(g.counts.sorted { $0.key < $1.key })")
            return 0
        case "_commit-cpu":  // diagnostic: _commit-cpu <empty dir on tmpfs>
            guard positional.count == 1 else { return 2 }
            try Probe.commitCPU(directory: positional[0])
            return 0
        case "_state-query":
            guard positional.count == 3, let queries = Int(positional[1]), let seed = UInt64(positional[2]) else { return 2 }
            StateBench.query(storePath: positional[0], queries: queries, seed: seed)
            return 0
        default:
            break
        }
    } catch {
        print("  ERROR: \(error)")
        return 1
    }

    let benchmarks: [(String, (BenchOptions) throws -> Void)] = [
        ("commit", CommitBench.run), ("state", StateBench.run), ("seal", SealBench.run),
    ]
    let selected: [(String, (BenchOptions) throws -> Void)]
    if command == "all" {
        selected = benchmarks
    } else if let b = benchmarks.first(where: { $0.0 == command }) {
        selected = [b]
    } else {
        print("layerfs-bench: unknown benchmark '\(command)'\n\n\(BenchOptions.usage)")
        return 2
    }
    guard FileSystemCheck.isDirectory(options.base) else {
        print("layerfs-bench: --dir \(options.base) is not a directory")
        return 2
    }

    installSignalForwarding()
    if geteuid() == 0 { LoopBtrfs.sweepStale(base: options.base) }
    print("layerfs-bench \(command)")
    for line in machineSummary(options) { print("  " + line) }
    flushOutput()
    var failures = 0
    let started = nowNanoseconds()
    for (name, body) in selected {
        let t0 = nowNanoseconds()
        do {
            try body(options)
        } catch {
            print("  \(name): ERROR: \(error)")
            failures += 1
        }
        exitIfSignalled()
        note("(\(name) took \(fixed(Double(nowNanoseconds() - t0) / 1e9, 1)) s)")
    }
    print("")
    print("total time \(fixed(Double(nowNanoseconds() - started) / 1e9, 1)) s")
    return failures == 0 ? 0 : 1
}

/// A child must not outlive its parent (which unmounts what the child is using): a watchdog
/// thread exits when the parent is gone (prctl(PR_SET_PDEATHSIG) is variadic, not callable here).
func exitWithParent() {
    let parent = getppid()
    _ = startThread {
        while getppid() == parent { usleep(200_000) }
        _exit(125)
    }
}

enum FileSystemCheck {
    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

exit(main())
