import Testing
@testable import LayerCore

@Suite struct StorePathTests {
    @Test(arguments: [
        "/", "/a", "/a/b", "/etc/hosts", "/...", "/a/.../b", "/.hidden", "/a/.b/..c", "/é/☕",
        "", "a", "a/b", "//a", "/a/", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a/.", "/a/..",
        "/a\u{0}b", "/" + String(repeating: "x", count: 255), "/" + String(repeating: "x", count: 256),
    ])
    func fastPathAgreesWithNormalize(_ path: String) {
        let normalized = try? StorePath.normalize(path)
        let fast = StorePath.isAlreadyCanonical(path)
        #expect(fast == (normalized == path), "\(path.debugDescription): fast \(fast), normalize \(String(describing: normalized))")
    }

    @Test func randomPathsAgree() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["/", "/", ".", ".", "a", "b", "\u{0}", "é"]
        for _ in 0..<20_000 {
            let path = String((0..<Int.random(in: 0...9, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            let normalized = try? StorePath.normalize(path)
            #expect(StorePath.isAlreadyCanonical(path) == (normalized == path), "\(path.debugDescription)")
        }
    }

    @Test func normalizeMakesPathsCanonical() throws {
        #expect(try StorePath.normalize("a//b/") == "/a/b")
        #expect(try StorePath.normalize("///") == "/")
        #expect(throws: LayerError.self) { try StorePath.normalize("/a/../b") }
        #expect(throws: LayerError.self) { try StorePath.normalize("/" + String(repeating: "x", count: 256)) }
    }
}
