import Foundation
import Testing
@testable import LayerCore

/// The worked examples of docs/FORMAT.md, read out of the document itself, reproduced by the
/// Swift implementation. If the document or the code changes, this fails.
@Suite struct FormatVectorTests {
    static let document: String = {
        let here = URL(fileURLWithPath: #filePath)
        let url = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/FORMAT.md")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    /// The body of the fenced block whose info string ends with `name` (e.g. "```text canonical-2").
    static func block(_ name: String) throws -> String {
        let lines = document.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix("```") && $0.hasSuffix(" " + name) }) else {
            throw LayerError(.notFound, "docs/FORMAT.md has no block named \(name)")
        }
        guard let end = lines[(start + 1)...].firstIndex(where: { $0 == "```" }) else {
            throw LayerError(.invalidArgument, "block \(name) is not closed")
        }
        return lines[(start + 1)..<end].joined(separator: "\n")
    }

    static var exampleEvents: [String] { ((try? block("example-events")) ?? "").components(separatedBy: "\n") }

    @Test func documentIsFound() {
        #expect(Self.document.contains("# layerfs on-disk format"))
        #expect(Self.exampleEvents.count == 12)
    }

    @Test(arguments: [0, 2, 3, 4, 9])
    func canonicalBytesAndHash(seq: Int) throws {
        let line = Self.exampleEvents[seq]
        let event = try EventCodec.decode(line: Array(line.utf8)).get()
        #expect(event.seq == UInt64(seq))
        let canonical = EventCodec.canonicalBytes(event)
        #expect(String(decoding: canonical, as: UTF8.self) == (try Self.block("canonical-\(seq)")))
        #expect(SHA256.hash(canonical).hex == (try Self.block("hash-\(seq)")))
        #expect(event.hash.hex == (try Self.block("hash-\(seq)")))
        // Encoding the decoded event again gives the very same line.
        var copy = event
        #expect(EventCodec.seal(&copy) == Array((line + "\n").utf8))
    }

    @Test func everyExampleLineDecodesAndChains() throws {
        var previous = Digest.zero
        for (i, line) in Self.exampleEvents.enumerated() {
            let event = try EventCodec.decode(line: Array(line.utf8)).get()
            #expect(event.seq == UInt64(i))
            #expect(event.previousHash == previous)
            previous = event.hash
        }
        let head = try Self.block("example-head")
        #expect(head == previous.hex + " 00000000000000000011")
    }

    @Test func merkleExample() throws {
        let hashes = try Self.exampleEvents.map { try EventCodec.decode(line: Array($0.utf8)).get().hash }
        let lines = try Self.block("merkle-3").components(separatedBy: "\n")
        let values = Dictionary(uniqueKeysWithValues: lines.map { l -> (String, String) in
            let parts = l.split(separator: " ")
            return (String(parts[0]), String(parts[1]))
        })
        #expect(MerkleTree.root(Array(hashes[0..<1])).hex == values["leaf0"])
        #expect(MerkleTree.root(Array(hashes[1..<2])).hex == values["leaf1"])
        #expect(MerkleTree.root(Array(hashes[2..<3])).hex == values["leaf2"])
        #expect(MerkleTree.root(Array(hashes[0..<2])).hex == values["node01"])
        #expect(MerkleTree.root(Array(hashes[0..<3])).hex == values["root"])
        #expect(MerkleTree.root([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.document.contains("The root of all 12 events of §11.1 (block 1 below) is `\(MerkleTree.root(hashes).hex)`"))
    }

    @Test func blockExample() throws {
        let line = try Self.block("example-blocks")
        let header = try BlockHeader.decode(line: Array(line.utf8)).get()
        #expect(String(decoding: BlockHeader.canonicalBytes(header), as: UTF8.self) == (try Self.block("block-canonical")))
        #expect(header.hash.hex == (try Self.block("block-hash")))
        let hashes = try Self.exampleEvents.map { try EventCodec.decode(line: Array($0.utf8)).get().hash }
        #expect(header.merkleRoot == MerkleTree.root(hashes))
        #expect(header.first == 0 && header.last == 11 && header.number == 1)
        #expect(Self.document.contains(".snapshots/\(header.snapshotName)`"))
        #expect(try Self.block("example-block-head") == header.hash.hex + " 00000000000000000001")
    }

    /// §11.5: the published test key signs block 1 to exactly the documented line (Ed25519 is
    /// deterministic), and the signature verifies for that store only.
    @Test func signedBlockExample() throws {
        let key = try Ed25519.PrivateKey(pem: Array((try Self.block("test-private-key") + "\n").utf8), file: "FORMAT.md")
        let publicKey = try Ed25519.PublicKey(pem: Array((try Self.block("test-public-key") + "\n").utf8), file: "FORMAT.md")
        #expect(key.publicKey.raw == publicKey.raw)
        #expect(publicKey.id.hex == (try Self.block("test-key-id")))
        #expect(Self.document.contains("`\(publicKey.raw.map { String(format: "%02x", $0) }.joined().prefix(8))…"))
        var header = try BlockHeader.decode(line: Array(try Self.block("example-blocks").utf8)).get()
        let storeID = "3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10"
        try header.sign(with: key, storeID: storeID)
        let documented = try Self.block("example-signed-block")
        #expect(String(decoding: header.line.dropLast(), as: UTF8.self) == documented)
        let decoded = try BlockHeader.decode(line: Array(documented.utf8)).get()
        #expect(decoded == header)
        #expect(decoded.signatureCheck(trusting: [publicKey], storeID: storeID) == .valid(publicKey.id))
        #expect(decoded.signatureCheck(trusting: [publicKey], storeID: "another") == .invalid(publicKey.id))
        #expect(String(decoding: decoded.signedMessage(storeID: storeID), as: UTF8.self)
            == "layerfs-block-signature/1\n\(storeID)\n" + (try Self.block("example-blocks")))
    }

    /// §11.6: the proof of event 2 is canonical, verifies with the test key, and its path is the
    /// one §11.6 describes.
    @Test func proofExample() throws {
        let proof = try InclusionProof.decode(Array(try Self.block("example-proof").utf8)).get()
        let publicKey = try Ed25519.PublicKey(pem: Array((try Self.block("test-public-key") + "\n").utf8), file: "FORMAT.md")
        let verified = try proof.verify(trustedKeys: [publicKey]).get()
        #expect(verified.event.seq == 2 && verified.block.number == 1 && verified.signedBy == publicKey.id)
        let hashes = try Self.exampleEvents.map { try EventCodec.decode(line: Array($0.utf8)).get().hash }
        #expect(proof.path == MerkleTree.auditPath(hashes[...], index: 2))
        #expect(proof.path == [MerkleTree.root([hashes[3]]), MerkleTree.root(Array(hashes[0..<2])), MerkleTree.root(Array(hashes[4..<8])), MerkleTree.root(Array(hashes[8..<12]))])
        #expect(proof.encoded == Array((try Self.block("example-proof") + "\n").utf8))
    }

    /// §12.1: the stream header example parses, names §11.1's store and block 1, and is canonical.
    @Test func streamHeaderExample() throws {
        let line = Array(try Self.block("stream-header").utf8)
        let header = try #require(ReplicationStream.decodeHeader(line))
        let genesis = try EventCodec.decode(line: Array(try #require(Self.exampleEvents.first).utf8)).get()
        #expect(header.store == genesis.storeID)
        #expect(header.first == 2 && header.last == 3 && header.base == 1)
        #expect(header.baseHash.hex == (try Self.block("block-hash")))
        #expect(ReplicationStream.encode(header) == line + [0x0A])
        // Every other header that breaks a rule of §12.1 is refused.
        let bad = [
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":2,"last":3,"base":0,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":2,"last":3,"base":2,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":0,"last":3,"base":0,"basehash":"0000000000000000000000000000000000000000000000000000000000000000"}"#,
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":3,"last":1,"base":2,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
            #"{"store":"3F1C2A9E-8b7d-4c21-9e5a-0d6b7c8e9f10","first":2,"last":3,"base":1,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
            #"{"first":2,"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","last":3,"base":1,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":2,"last":3,"base":1,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88" }"#,
            #"{"store":"3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10","first":02,"last":3,"base":1,"basehash":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#,
        ]
        for text in bad { #expect(ReplicationStream.decodeHeader(Array(text.utf8)) == nil, "refused: \(text)") }
        #expect(ReplicationStream.decodeTrailer(Array(#"{"bytes":12,"sha256":"568d21806250460d6c26045c0e00f0cd8f6334dba0ada49bf0d38b5cf9cc7d88"}"#.utf8))?.bytes == 12)
        #expect(ReplicationStream.decodeEnd(Array(#"{"blocks":2}"#.utf8)) == 2)
        #expect(ReplicationStream.decodeEnd(Array(#"{"blocks":-2}"#.utf8)) == nil)
    }

    /// The example is a whole store: write it to disk with its blob and open it.
    @Test func exampleStoreOpensAndVerifies() throws {
        try withTemporaryDirectory { dir in
            let store = dir + "/example"
            try FileManager.default.createDirectory(atPath: store + "/metadata", withIntermediateDirectories: true)
            let blob = Array(repeating: UInt8(ascii: "x"), count: 70000)
            let digest = SHA256.hash(blob).hex
            try FileManager.default.createDirectory(atPath: store + "/objects/" + digest.prefix(2), withIntermediateDirectories: true)
            try Data(blob).write(to: URL(fileURLWithPath: store + "/objects/\(digest.prefix(2))/\(digest.dropFirst(2))"))
            try Data((Self.exampleEvents.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: store + "/events.jsonl"))
            try Data((try Self.block("example-blocks") + "\n").utf8).write(to: URL(fileURLWithPath: store + "/blocks.jsonl"))
            try Data((try Self.block("example-head") + "\n").utf8).write(to: URL(fileURLWithPath: store + "/metadata/current_hash"))
            try Data((try Self.block("example-block-head") + "\n").utf8).write(to: URL(fileURLWithPath: store + "/metadata/current_block"))
            let opened = try Store.open(store, mode: .readOnly)
            #expect(opened.storeID == "3f1c2a9e-8b7d-4c21-9e5a-0d6b7c8e9f10")
            #expect(opened.headSequence == 11)
            #expect(opened.blocks.count == 1)
            #expect(try opened.readLink(opened.stat("/etc/motd", at: 5)) == "issue")
            #expect(String(decoding: try opened.read(opened.stat("/etc/issue")), as: UTF8.self) == "Welcome to \"edge-1\"\n\tcafé ☕\n")
            let issue = try opened.stat("/etc/issue")
            #expect(issue.mode == 0o444 && issue.uid == 0 && issue.gid == 4)
            #expect(issue.mtime == Timestamp(canonical: "2026-01-01T00:00:00.000000000Z"))
            #expect(try opened.read(opened.stat("/etc/key.bin")) == [0x00, 0xff])
            #expect(try opened.read(opened.stat("/etc/big.txt")).count == 70000)
            #expect(throws: LayerError.self) { try opened.stat("/etc/motd") }
        }
    }
}
