import ArgumentParser
import LayerCore
import LayerIndex

/// Options of the commands that use the similarity index (`similar`, `reindex`).
struct IndexOptions: ParsableArguments {
    @Option(
        name: .customLong("index-dir"),
        help: ArgumentHelp("The index directory (default: /var/lib/layerfs/index/<store id>).", valueName: "dir"))
    var indexDirectory: String?

    @Option(help: ArgumentHelp("The embedder: builtin (default) or minilm.", valueName: "name"))
    var embedder: String = "builtin"

    @Option(
        name: .customLong("model-dir"),
        help: ArgumentHelp("Where the MiniLM model files are (default: \(Embedders.defaultModelDirectory)).", valueName: "dir"))
    var modelDirectory: String?

    func makeEmbedder() throws(CLIError) -> any Embedder {
        do {
            return try Embedders.make(embedder, modelDirectory: modelDirectory)
        } catch {
            throw CLIError("embedder \(embedder): \(error)", status: .usage)
        }
    }

    func directory(for store: Store) -> String { indexDirectory ?? SimilarityIndex.defaultDirectory(for: store) }
}
