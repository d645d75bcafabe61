import Testing

@testable import LayerIndex

@Suite struct EmbedderProtocolTests {
    struct Constant: Embedder {
        var id: String { "constant" }
        var dimension: Int { 2 }
        func embed(_ text: String) throws -> [Float] { [Float(text.count), 0] }
    }

    @Test func batchEmbeddingDefaultsToOneByOne() throws {
        #expect(try Constant().embed(batch: ["a", "bcd"]) == [[1, 0], [3, 0]])
    }
}
