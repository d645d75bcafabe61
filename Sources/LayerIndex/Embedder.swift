/// Turns text into a vector for similarity search.
///
/// Every embedder has a stable `id`, recorded in the index: an index built with one embedder is
/// never queried with another (a different id means a rebuild). Vectors are L2-normalized, so
/// cosine similarity is their inner product.
public protocol Embedder: Sendable {
    /// Stable identity: name, version and anything that changes the vectors (e.g. the dimension).
    var id: String { get }
    /// Length of every vector this embedder returns.
    var dimension: Int { get }
    /// The L2-normalized embedding of `text` (a zero vector only for text with no features).
    func embed(_ text: String) throws -> [Float]
}

extension Embedder {
    /// Several texts at once (embedders that batch override this).
    public func embed(batch texts: [String]) throws -> [[Float]] {
        try texts.map { try embed($0) }
    }
}
