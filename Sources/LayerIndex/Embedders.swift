/// The embedders layerfs ships, by the names the CLI and the mount accept.
public enum Embedders {
    /// Where `scripts/install-model.sh` puts the MiniLM model by default.
    public static let defaultModelDirectory = "/var/lib/layerfs/models/all-MiniLM-L6-v2"

    public static let names = ["builtin", "minilm"]

    /// `builtin` (the default: no files needed) or `minilm` (all-MiniLM-L6-v2 from `modelDirectory`).
    public static func make(_ name: String, modelDirectory: String? = nil) throws -> any Embedder {
        switch name {
        case "builtin":
            return BuiltinEmbedder()
        case "minilm", "all-MiniLM-L6-v2":
            return try MiniLMEmbedder(modelDirectory: modelDirectory ?? defaultModelDirectory)
        default:
            throw SimilarityError(.invalidQuery, "unknown embedder \(name): use one of \(names.joined(separator: ", "))")
        }
    }
}
