import COpenBLAS
import Foundation

/// The shape of a BERT encoder, as in the model's `config.json`.
public struct BertConfig: Sendable, Equatable {
    public var vocabularySize = 30522
    public var hiddenSize = 384
    public var layerCount = 6
    public var headCount = 12
    public var intermediateSize = 1536
    public var maxPositions = 512
    public var tokenTypeCount = 2
    public var layerNormEpsilon: Float = 1e-12

    /// all-MiniLM-L6-v2.
    public static let miniLML6 = BertConfig()

    public init() {}

    /// Reads a Hugging Face `config.json`; only BERT with absolute positions and exact (erf) GELU is supported.
    public init(configFile path: String) throws {
        func bad(_ reason: String) -> BertEncoderError { .badConfig(path: path, reason: reason) }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw bad(error.localizedDescription)
        }
        guard let json = object as? [String: Any] else { throw bad("not a JSON object") }
        func int(_ key: String, _ fallback: Int) throws -> Int {
            guard let v = json[key] else { return fallback }
            guard let i = v as? Int, i > 0 else { throw bad("\(key) is not a positive integer") }
            return i
        }
        if let type = json["model_type"] as? String, type != "bert" { throw bad("model_type \(type), expected bert") }
        if let act = json["hidden_act"] as? String, act != "gelu" {
            throw bad("hidden_act \(act): only gelu (the erf form) is implemented")
        }
        if let pos = json["position_embedding_type"] as? String, pos != "absolute" {
            throw bad("position_embedding_type \(pos): only absolute is implemented")
        }
        vocabularySize = try int("vocab_size", vocabularySize)
        hiddenSize = try int("hidden_size", hiddenSize)
        layerCount = try int("num_hidden_layers", layerCount)
        headCount = try int("num_attention_heads", headCount)
        intermediateSize = try int("intermediate_size", intermediateSize)
        maxPositions = try int("max_position_embeddings", maxPositions)
        tokenTypeCount = try int("type_vocab_size", tokenTypeCount)
        if let eps = json["layer_norm_eps"] as? Double { layerNormEpsilon = Float(eps) }
        guard hiddenSize % headCount == 0 else { throw bad("hidden_size \(hiddenSize) not divisible by the heads") }
    }
}

public enum BertEncoderError: Error, CustomStringConvertible, Equatable {
    case badConfig(path: String, reason: String)
    case badWeights(path: String, reason: String)
    case sequenceTooLong(length: Int, max: Int)
    case tokenOutOfRange(id: Int32, vocabularySize: Int)

    public var description: String {
        switch self {
        case .badConfig(let path, let reason): "model config \(path): \(reason)"
        case .badWeights(let path, let reason): "model weights \(path): \(reason)"
        case .sequenceTooLong(let n, let max): "sequence of \(n) tokens, the model takes at most \(max)"
        case .tokenOutOfRange(let id, let size): "token id \(id) outside the vocabulary of \(size)"
        }
    }
}

/// A read-only Float buffer allocated once (the weights), shared freely between threads.
final class FloatTensor: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(count, 1))
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: count) }
    }

    deinit { pointer.deallocate() }
}

/// The BERT encoder (the `BertModel` of Hugging Face transformers, without the pooler), in Float32,
/// with every matrix product through OpenBLAS's `cblas_sgemm`.
///
///     x = LayerNorm(word[id] + position[i] + tokenType[0])
///     for each layer:
///         x = LayerNorm(x + Wo · Attention(Wq·x, Wk·x, Wv·x))      (12 heads, softmax(QKᵀ/√d)·V)
///         x = LayerNorm(x + W2 · GELU(W1·x))                         (GELU: x/2·(1+erf(x/√2)))
///
/// Several sequences are run together packed one after another, not padded: the linear layers see
/// all their rows in one product, and attention for each sequence covers only its own tokens —
/// exactly what the padded form with an attention mask computes (masked keys get weight 0), without
/// computing the padding.
public final class BertEncoder: Sendable {
    public let config: BertConfig

    struct Layer: Sendable {
        let qkvWeight: FloatTensor  // [3H, H]: query, key, value rows stacked
        let qkvBias: FloatTensor  // [3H]
        let attentionOutWeight: FloatTensor  // [H, H]
        let attentionOutBias: FloatTensor
        let attentionNormGain: FloatTensor
        let attentionNormBias: FloatTensor
        let intermediateWeight: FloatTensor  // [I, H]
        let intermediateBias: FloatTensor
        let outputWeight: FloatTensor  // [H, I]
        let outputBias: FloatTensor
        let outputNormGain: FloatTensor
        let outputNormBias: FloatTensor
    }

    let wordEmbeddings: FloatTensor
    let positionEmbeddings: FloatTensor
    let tokenTypeEmbeddings: FloatTensor
    let embeddingNormGain: FloatTensor
    let embeddingNormBias: FloatTensor
    let layers: [Layer]

    /// Loads the weights from a safetensors file of a `BertModel` (names `embeddings.…`,
    /// `encoder.layer.N.…`, with or without a prefix such as `bert.` or `0.auto_model.`).
    public init(weights file: SafeTensorsFile, config: BertConfig) throws {
        self.config = config
        let suffix = "embeddings.word_embeddings.weight"
        guard let wordName = file.names.first(where: { $0.hasSuffix(suffix) }) else {
            throw BertEncoderError.badWeights(path: file.path, reason: "no tensor named …\(suffix): not a BERT model")
        }
        let prefix = String(wordName.dropLast(suffix.count))
        let h = config.hiddenSize
        let inter = config.intermediateSize
        func tensor(_ name: String, _ shape: [Int]) throws -> FloatTensor {
            FloatTensor(try file.floats(prefix + name, shape: shape))
        }
        wordEmbeddings = try tensor("embeddings.word_embeddings.weight", [config.vocabularySize, h])
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [config.maxPositions, h])
        tokenTypeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", [config.tokenTypeCount, h])
        embeddingNormGain = try tensor("embeddings.LayerNorm.weight", [h])
        embeddingNormBias = try tensor("embeddings.LayerNorm.bias", [h])
        var layers: [Layer] = []
        for l in 0..<config.layerCount {
            let p = "encoder.layer.\(l)."
            func floats(_ name: String, _ shape: [Int]) throws -> [Float] {
                try file.floats(prefix + p + name, shape: shape)
            }
            let qkvWeight =
                try floats("attention.self.query.weight", [h, h]) + floats("attention.self.key.weight", [h, h])
                + floats("attention.self.value.weight", [h, h])
            let qkvBias =
                try floats("attention.self.query.bias", [h]) + floats("attention.self.key.bias", [h])
                + floats("attention.self.value.bias", [h])
            layers.append(
                Layer(
                    qkvWeight: FloatTensor(qkvWeight),
                    qkvBias: FloatTensor(qkvBias),
                    attentionOutWeight: try tensor(p + "attention.output.dense.weight", [h, h]),
                    attentionOutBias: try tensor(p + "attention.output.dense.bias", [h]),
                    attentionNormGain: try tensor(p + "attention.output.LayerNorm.weight", [h]),
                    attentionNormBias: try tensor(p + "attention.output.LayerNorm.bias", [h]),
                    intermediateWeight: try tensor(p + "intermediate.dense.weight", [inter, h]),
                    intermediateBias: try tensor(p + "intermediate.dense.bias", [inter]),
                    outputWeight: try tensor(p + "output.dense.weight", [h, inter]),
                    outputBias: try tensor(p + "output.dense.bias", [h]),
                    outputNormGain: try tensor(p + "output.LayerNorm.weight", [h]),
                    outputNormBias: try tensor(p + "output.LayerNorm.bias", [h])))
        }
        self.layers = layers
    }

    /// The last hidden states of each sequence, packed: row r of the result (`hiddenSize` floats)
    /// is the token at position r of the concatenation of `sequences`.
    public func hiddenStates(_ sequences: [[Int32]]) throws -> [Float] {
        let h = config.hiddenSize
        let rows = sequences.reduce(0) { $0 + $1.count }
        for s in sequences {
            if s.count > config.maxPositions {
                throw BertEncoderError.sequenceTooLong(length: s.count, max: config.maxPositions)
            }
            if let bad = s.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                throw BertEncoderError.tokenOutOfRange(id: bad, vocabularySize: config.vocabularySize)
            }
        }
        if rows == 0 { return [] }
        let spans = sequences.reduce(into: [(start: Int, count: Int)]()) { acc, s in
            acc.append((start: (acc.last.map { $0.start + $0.count } ?? 0), count: s.count))
        }
        let longest = sequences.map(\.count).max() ?? 0

        // Scratch, allocated per call so that concurrent calls share nothing but the weights.
        let x = UnsafeMutablePointer<Float>.allocate(capacity: rows * h)
        let qkv = UnsafeMutablePointer<Float>.allocate(capacity: rows * 3 * h)
        let context = UnsafeMutablePointer<Float>.allocate(capacity: rows * h)
        let wide = UnsafeMutablePointer<Float>.allocate(capacity: rows * config.intermediateSize)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: longest * longest)
        defer {
            x.deallocate()
            qkv.deallocate()
            context.deallocate()
            wide.deallocate()
            scores.deallocate()
        }

        // Embeddings: word + position + token type 0, then LayerNorm.
        for (s, span) in zip(sequences, spans) {
            for (i, id) in s.enumerated() {
                let row = x + (span.start + i) * h
                let word = wordEmbeddings.pointer + Int(id) * h
                let position = positionEmbeddings.pointer + i * h
                let type = tokenTypeEmbeddings.pointer
                for j in 0..<h { row[j] = word[j] + position[j] + type[j] }
            }
        }
        layerNorm(x, rows: rows, gain: embeddingNormGain, bias: embeddingNormBias)

        let heads = config.headCount
        let d = h / heads
        let scale = 1 / Float(d).squareRoot()
        for layer in layers {
            // Q, K, V in one product: qkv[r] = [q | k | v].
            linear(x, rows: rows, inputs: h, weight: layer.qkvWeight, bias: layer.qkvBias, outputs: 3 * h, into: qkv)
            for span in spans {
                let n = span.count
                let base = qkv + span.start * 3 * h
                for head in 0..<heads {
                    let q = base + head * d
                    let k = base + h + head * d
                    let v = base + 2 * h + head * d
                    // scores = scale · Q Kᵀ   (n × n)
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(d),
                        scale, q, Int32(3 * h), k, Int32(3 * h), 0, scores, Int32(n))
                    softmaxRows(scores, rows: n, columns: n)
                    // context = scores · V   (n × d), into this head's columns
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(d), Int32(n),
                        1, scores, Int32(n), v, Int32(3 * h), 0, context + span.start * h + head * d, Int32(h))
                }
            }
            // x = LayerNorm(x + Wo·context + bo)
            linear(
                context, rows: rows, inputs: h, weight: layer.attentionOutWeight, bias: layer.attentionOutBias,
                outputs: h, into: x, accumulate: true)
            layerNorm(x, rows: rows, gain: layer.attentionNormGain, bias: layer.attentionNormBias)
            // x = LayerNorm(x + W2·GELU(W1·x + b1) + b2)
            let inter = config.intermediateSize
            linear(
                x, rows: rows, inputs: h, weight: layer.intermediateWeight, bias: layer.intermediateBias,
                outputs: inter, into: wide)
            for i in 0..<(rows * inter) {
                let t = wide[i]
                wide[i] = 0.5 * t * (1 + erff(t * 0.70710678118654752))
            }
            linear(
                wide, rows: rows, inputs: inter, weight: layer.outputWeight, bias: layer.outputBias,
                outputs: h, into: x, accumulate: true)
            layerNorm(x, rows: rows, gain: layer.outputNormGain, bias: layer.outputNormBias)
        }
        return Array(UnsafeBufferPointer(start: x, count: rows * h))
    }

    /// y = x·Wᵀ + b (W is [outputs, inputs], PyTorch's Linear layout); with `accumulate`, y += that.
    private func linear(
        _ x: UnsafePointer<Float>, rows: Int, inputs: Int, weight: FloatTensor, bias: FloatTensor, outputs: Int,
        into y: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) {
        for r in 0..<rows {
            let row = y + r * outputs
            if accumulate {
                for j in 0..<outputs { row[j] += bias.pointer[j] }
            } else {
                row.update(from: bias.pointer, count: outputs)
            }
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs),
            1, x, Int32(inputs), weight.pointer, Int32(inputs), 1, y, Int32(outputs))
    }

    private func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, gain: FloatTensor, bias: FloatTensor) {
        let h = config.hiddenSize
        let eps = config.layerNormEpsilon
        for r in 0..<rows {
            let row = x + r * h
            var sum: Float = 0
            for j in 0..<h { sum += row[j] }
            let mean = sum / Float(h)
            var squares: Float = 0
            for j in 0..<h {
                let c = row[j] - mean
                squares += c * c
            }
            let inverse = 1 / (squares / Float(h) + eps).squareRoot()
            for j in 0..<h { row[j] = (row[j] - mean) * inverse * gain.pointer[j] + bias.pointer[j] }
        }
    }

    private func softmaxRows(_ m: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        for r in 0..<rows {
            let row = m + r * columns
            var top = -Float.infinity
            for j in 0..<columns { top = max(top, row[j]) }
            var sum: Float = 0
            for j in 0..<columns {
                let e = expf(row[j] - top)
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<columns { row[j] *= inverse }
        }
    }
}
