import ArgumentParser
import Foundation
import LayerCore
import LayerIndex

/// `layerfs similar STORE QUERY [--k N] [--json]`: the versions most similar to a query.
struct SimilarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similar",
        abstract: "Find the file versions most similar to a query (the similarity index).",
        discussion: """
            Prints the k best matches, best first: rank, similarity (cosine), the element's path and \
            the canonical time of the version; --json prints one object per line (rank, similarity, \
            seq, path, time). The same query through a mount is /@similar/<query>/.

            The index lives outside the store (--index-dir; default /var/lib/layerfs/index/<store \
            id>/). If no other process maintains it (a mount of the store does), this command first \
            brings it up to date with the log, building it when it is missing, corrupt, another \
            store's or another embedder's. If a mount maintains it, the query is answered from the \
            index as it is (possibly a few events behind).

            EXAMPLES:
              layerfs similar /srv/layer "which interfaces are bridges"
              layerfs similar /srv/layer "ssh root login" --k 3 --json
              layerfs similar /srv/layer "bridge" --embedder minilm
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("The query: any text.", valueName: "query"))
    var query: String

    @Option(name: .customLong("k"), help: ArgumentHelp("How many matches (1...1000).", valueName: "n"))
    var k: Int = 10

    @Flag(help: "One JSON object per match.")
    var json = false

    @OptionGroup var index: IndexOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...1000).contains(k) else { throw ValidationError("--k must be between 1 and 1000") }
    }

    func run() throws {
        try global.run { context in
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.logger)
            let embedder = try index.makeEmbedder()
            let similarity = SimilarityIndex(store: store, directory: index.directory(for: store), embedder: embedder, logger: context.logger)
            do {
                do {
                    try similarity.lock()
                    similarity.load()
                    let bar = ProgressBar.onTerminal("indexing")
                    try similarity.catchUp { done, total in bar?.update(Double(done) / Double(max(total, 1)), detail: "\(done) of \(total) events") }
                    bar?.finish()
                } catch let error as SimilarityError where error.kind == .locked {
                    similarity.load(readOnly: true)  // a mount maintains it: read it as it is
                }
                let matches = try similarity.query(query, k: k)
                let out = context.output
                for (rank, match) in matches.enumerated() {
                    if json {
                        let object: [String: Any] = [
                            "rank": rank + 1, "similarity": Double(match.similarity), "seq": match.seq, "path": match.path,
                            "time": match.time.canonical,
                        ]
                        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                        out.line(String(decoding: data, as: UTF8.self))
                    } else {
                        out.line(String(format: "%3d  %.4f  %@  %@", rank + 1, Double(match.similarity), match.path, match.time.canonical))
                    }
                }
                if matches.isEmpty && !json { out.line("no matches: the index is empty") }
            } catch let error as SimilarityError {
                throw CLIError(error.description, status: error.kind == .invalidQuery ? .usage : (error.kind == .unavailable ? .locked : .ioError))
            }
        }
    }
}

/// `layerfs reindex STORE [--embedder NAME]`: rebuilds the similarity index from the log.
struct ReindexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reindex",
        abstract: "Rebuild the similarity index of a store from its log.",
        discussion: """
            Deletes the index in the index directory (--index-dir; default \
            /var/lib/layerfs/index/<store id>/) and embeds every file version again, with a progress \
            bar on a terminal. Use it after changing the embedder, or any time: the index is derived \
            data, never part of the store. Fails (exit 75) while a mount of the store maintains the \
            index; unmount first (the mount rebuilds a missing or stale index by itself).

            EXAMPLES:
              layerfs reindex /srv/layer
              layerfs reindex /srv/layer --embedder minilm --model-dir /var/lib/layerfs/models/all-MiniLM-L6-v2
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Option(
        name: .customLong("save-interval"),
        help: ArgumentHelp("Seconds between saves of progress; after an interruption, the next `similar` or mount resumes from the last save.", valueName: "s"))
    var saveInterval: Double = 5

    @OptionGroup var index: IndexOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard saveInterval > 0, saveInterval.isFinite else { throw ValidationError("--save-interval must be a positive number of seconds") }
    }

    func run() throws {
        try global.run { context in
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.logger)
            let embedder = try index.makeEmbedder()
            let directory = index.directory(for: store)
            let similarity = SimilarityIndex(store: store, directory: directory, embedder: embedder, logger: context.logger)
            similarity.saveInterval = saveInterval
            let started = Date()
            do {
                try similarity.lock()
                let bar = ProgressBar.onTerminal("reindexing")
                try similarity.rebuild { done, total in bar?.update(Double(done) / Double(max(total, 1)), detail: "\(done) of \(total) events") }
                bar?.finish()
            } catch let error as SimilarityError {
                throw CLIError(error.description, status: error.kind == .locked ? .locked : .ioError)
            }
            let status = similarity.status
            let seconds = Date().timeIntervalSince(started)
            context.output.line(
                "indexed \(status.versions) versions of \(store.headSequence + 1) events with \(embedder.id) in "
                    + String(format: "%.1f s", seconds) + " (\(directory))")
        }
    }
}
