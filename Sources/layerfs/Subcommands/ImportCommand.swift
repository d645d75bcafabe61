import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs import STORE DIR`: makes the store's present match a directory (LayerCore `Importer`).
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Make the store's present tree match a directory, with the fewest events.",
        discussion: """
            DIR is walked without following symlinks and compared with the store's current tree:
              new directories          mkdir (with their mode)
              new or changed files     write (content and mode); a mode-only change is a chmod
              symlinks                 symlink; a changed target is unlink + symlink
              gone from DIR            unlink / rmdir, deepest first
              another kind of node     the old one is removed, then the new one created
              directory mode changed   chmod
            Unchanged files commit nothing, so importing the same DIR twice commits nothing the \
            second time. Owners, modification times and the mode of DIR itself are not imported: \
            events record who committed them, and when.

            Skipped, with a warning listing each: sockets, FIFOs and devices (a store holds files, \
            directories and symlinks), names that are not valid UTF-8, names starting with '@' at the \
            top (reserved for the mount's views), unreadable entries, and the store itself if it lies \
            inside DIR. A skipped entry leaves the store's node of the same name untouched. When \
            anything was skipped the rest is still imported and the command exits 1.

            Each change is one event made by this process (uid, pid, "layerfs"). The store must not \
            be open for writing elsewhere (a mount holds it): that exits 75 and names the holder. The \
            import does not seal a block unless --seal is given.

            A progress bar is shown on standard error when it is a terminal.

            EXAMPLES:
              layerfs import /srv/layer ./config
              layerfs import /srv/layer ./config --dry-run     (what would change)
              layerfs import /srv/layer ./config --seal        (then seal a block)
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("The directory whose tree the store's present should become.", valueName: "dir"))
    var directory: String

    @Flag(help: "Report what would change, and commit nothing.")
    var dryRun = false

    @Flag(help: "Seal the new events into a block afterwards.")
    var seal = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            // The directory first: a typo should not need the store's lock to be reported.
            var st = stat()
            guard stat(directory, &st) == 0 else {
                throw CLIError(LayerError.system("stat", errno: errno, path: directory), during: .readingInput)
            }
            guard st.st_mode & S_IFMT == S_IFDIR else {
                throw CLIError("\(Describe.text(directory)): not a directory", status: .noInput)
            }

            let store = try StoreAccess.open(
                self.store, mode: dryRun ? .readOnly : .readWrite, logger: context.logger)
            let bar = ProgressBar.onTerminal(dryRun ? "comparing" : "importing")
            let report: ImportReport
            do throws(LayerError) {
                report = try Importer(store: store).importDirectory(directory, dryRun: dryRun) { progress in
                    switch progress.phase {
                    case .scanning: bar?.spin("scanning: \(progress.entriesDone) entries")
                    case .importing:
                        bar?.update(
                            progress.fraction,
                            detail: "\(progress.entriesDone)/\(progress.entriesTotal) entries, \(shortSize(progress.bytesDone))")
                    }
                }
                bar?.finish()
            } catch {
                bar?.finish()
                try? store.close()
                throw CLIError(error, during: .operation, prefix: "import stopped: ")
            }

            var sealed: BlockHeader?
            if seal && !dryRun {
                sealed = try during(.operation) { () throws(LayerError) in try store.seal() }
            }
            try during(.operation) { () throws(LayerError) in try store.close() }

            let out = context.output
            let counts =
                "\(report.created) created, \(report.changed) changed, \(report.removed) removed, "
                + "\(report.unchanged) unchanged, \(report.skipped.count) skipped"
            if dryRun {
                out.line("dry run: importing \(Describe.text(directory)) into \(Describe.text(store.path)) would commit \(Describe.plural(report.events, "event")): \(counts)")
            } else {
                var range = ""
                if let first = report.firstEvent, let last = report.lastEvent {
                    range = first == last ? " (event \(first))" : " (events \(first)...\(last))"
                }
                out.line("imported \(Describe.text(directory)) into \(Describe.text(store.path)): \(Describe.plural(report.events, "event"))\(range); \(counts)")
                if let sealed {
                    out.line("sealed block \(sealed.number): events \(sealed.first)...\(sealed.last)")
                }
            }
            out.flush()
            if !report.skipped.isEmpty {
                StandardError.warning("skipped \(Describe.plural(report.skipped.count, "entry", "entries")):")
                for skip in report.skipped {
                    StandardError.line("  \(Describe.text(skip.path)): \(skip.reason)")
                }
                throw CLIError(
                    "import \(dryRun ? "would skip" : "skipped") \(Describe.plural(report.skipped.count, "entry", "entries")) (listed above); everything else \(dryRun ? "would be" : "was") imported",
                    status: .failure)
            }
        }
    }
}
