// Signed block headers (FORMAT.md §8.7) and Merkle inclusion proofs (§8.8): keys, signatures,
// audit paths for every tree shape, and every way to damage a proof.

import Foundation
import Testing
@testable import LayerCore

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SigningAndProofTests {
    static let policy = Store.Options(sealPolicy: .manual)

    // MARK: Keys and signatures

    @Test func keysRoundTripThroughPEMAndSignaturesVerifyOnlyForTheirKeyAndMessage() throws {
        let key = try Ed25519.PrivateKey.generate()
        let pem = key.pem
        #expect(String(decoding: pem, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let reread = try Ed25519.PrivateKey(pem: pem, file: "k")
        #expect(reread.publicKey.raw == key.publicKey.raw)
        let publicKey = try Ed25519.PublicKey(pem: key.publicKey.pem, file: "k.pub")
        #expect(String(decoding: key.publicKey.pem, as: UTF8.self).hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        #expect(publicKey.id == SHA256.hash(publicKey.raw) && publicKey.raw.count == 32)

        let message = Array("layerfs".utf8)
        let signature = try key.sign(message)
        #expect(signature.count == 64)
        #expect(publicKey.isValidSignature(signature, of: message))
        #expect(try reread.sign(message) == signature, "Ed25519 signatures are deterministic")
        #expect(!publicKey.isValidSignature(signature, of: Array("layerfS".utf8)))
        #expect(!publicKey.isValidSignature(Array(signature.dropLast()), of: message))
        for bit in stride(from: 0, to: 512, by: 37) {
            var flipped = signature
            flipped[bit / 8] ^= UInt8(1 << (bit % 8))
            #expect(!publicKey.isValidSignature(flipped, of: message), "bit \(bit)")
        }
        let other = try Ed25519.PrivateKey.generate().publicKey
        #expect(!other.isValidSignature(signature, of: message))
        #expect(other.id != publicKey.id)
    }

    @Test func badKeyFilesAreClearErrors() throws {
        for (bytes, expected) in [
            (Array("not a key".utf8), "is not a PEM private key"),
            (Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8), "is not a PEM private key"),
            ([UInt8](), "is not a PEM private key"),
        ] {
            let error = try #require(throws: LayerError.self) { try Ed25519.PrivateKey(pem: bytes, file: "/k") }
            #expect(error.message.contains(expected), "\(error.message)")
        }
        // A public key where a private key belongs, and the other way round.
        let key = try Ed25519.PrivateKey.generate()
        #expect(throws: LayerError.self) { try Ed25519.PrivateKey(pem: key.publicKey.pem, file: "/k") }
        #expect(throws: LayerError.self) { try Ed25519.PublicKey(pem: key.pem, file: "/k.pub") }
        let missing = try #require(throws: LayerError.self) { try Ed25519.PublicKey(contentsOf: "/nonexistent/k.pub") }
        #expect(missing.message.contains("/nonexistent/k.pub"), "\(missing.message)")
    }

    // MARK: Merkle audit paths

    /// For every tree of 1...70 leaves and every leaf, the audit path leads to the root; any other
    /// index, a path with a hash added or removed, and a changed leaf do not.
    @Test func auditPathsLeadToTheRootForEveryShape() {
        let all = (0..<70).map { SHA256.hash("leaf \($0)") }
        for size in 1...70 {
            let leaves = Array(all[0..<size])
            let root = MerkleTree.root(leaves)
            for index in 0..<size {
                let path = MerkleTree.auditPath(leaves[...], index: index)
                #expect(MerkleTree.root(fromAuditPath: path, leaf: leaves[index], index: UInt64(index), size: UInt64(size)) == root)
                for other in [index - 1, index + 1] where other >= 0 && other < size {
                    #expect(MerkleTree.root(fromAuditPath: path, leaf: leaves[index], index: UInt64(other), size: UInt64(size)) != root)
                }
                if size > 1 {
                    #expect(MerkleTree.root(fromAuditPath: path, leaf: leaves[(index + 1) % size], index: UInt64(index), size: UInt64(size)) != root)
                }
                #expect(MerkleTree.root(fromAuditPath: path + [root], leaf: leaves[index], index: UInt64(index), size: UInt64(size)) != root)
                if !path.isEmpty {
                    #expect(MerkleTree.root(fromAuditPath: Array(path.dropLast()), leaf: leaves[index], index: UInt64(index), size: UInt64(size)) != root)
                }
                #expect(MerkleTree.root(fromAuditPath: path, leaf: leaves[index], index: UInt64(size), size: UInt64(size)) == nil)
            }
        }
    }

    // MARK: Signed stores

    /// A store with three signed blocks, its key, and its directory.
    func withSignedStore(_ body: (Store, Ed25519.PrivateKey, String) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            var options = Self.policy
            let key = try Ed25519.PrivateKey.generate()
            options.signingKey = key
            let store = try Store.open(path, options: options)
            for round in 0..<3 {
                for i in 0..<(5 + round * 4) { try store.put("/f\(i)", "round \(round) file \(i)\n") }
                try store.seal()
            }
            try store.put("/unsealed", "not in a block\n")
            try body(store, key, path)
            try store.close()
        }
    }

    @Test func everySealedBlockIsSignedForItsStore() throws {
        try withSignedStore { store, key, path in
            let blocks = store.blocks
            #expect(blocks.count == 3)
            for block in blocks {
                #expect(block.signatureCheck(trusting: [key.publicKey], storeID: store.storeID) == .valid(key.publicKey.id))
                // Signed for this store only: the same header does not verify as another store's.
                #expect(block.signatureCheck(trusting: [key.publicKey], storeID: "another-store") == .invalid(key.publicKey.id))
                let other = try Ed25519.PrivateKey.generate().publicKey
                #expect(block.signatureCheck(trusting: [other], storeID: store.storeID) == .unknownKey(key.publicKey.id))
                #expect(block.signatureCheck(trusting: [other, key.publicKey], storeID: store.storeID) == .valid(key.publicKey.id))
            }
            // The signature survives a reopen: it is part of the block's line.
            let reader = try Store.open(path, mode: .readOnly)
            #expect(reader.blocks == blocks)
            #expect(reader.blocks.allSatisfy { $0.signature != nil })
        }
    }

    @Test func theStoresSettingPicksTheKeyAndAnUnusableKeyStopsTheWriter() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let key = try Ed25519.PrivateKey.generate()
            let keyPath = dir + "/key"
            try setFileBytes(keyPath, key.pem)
            #expect(chmod(keyPath, 0o644) == 0)
            // Refused while others can read it; the setting is not written.
            let exposed = try #require(throws: LayerError.self) { try Store.setSigningKey(path, keyPath: keyPath) }
            #expect(exposed.message.contains("chmod 600"), "\(exposed.message)")
            #expect(try Store.signingKeySetting(path) == nil)
            #expect(chmod(keyPath, 0o600) == 0)
            #expect(throws: LayerError.self) { try Store.setSigningKey(path, keyPath: "relative/key") }
            try Store.setSigningKey(path, keyPath: keyPath)
            #expect(try Store.signingKeySetting(path) == keyPath)

            var store = try Store.open(path, options: Self.policy)
            #expect(store.signingKeyID == key.publicKey.id)
            try store.put("/a", "a\n")
            let block = try #require(try store.seal())
            #expect(block.signatureCheck(trusting: [key.publicKey], storeID: store.storeID) == .valid(key.publicKey.id))
            try store.close()

            // The key vanishes: a writer refuses to open rather than seal unsigned blocks.
            try FileManager.default.removeItem(atPath: keyPath)
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: Self.policy) }
            #expect(error.message.contains(keyPath) && error.message.contains("metadata/signing_key"), "\(error.message)")
            // Readers do not need the key; the refused writer left the store cleanly closed.
            #expect(try Store.open(path, mode: .readOnly).openNotes.isEmpty)
            try Store.setSigningKey(path, keyPath: nil)
            store = try Store.open(path, options: Self.policy)
            #expect(store.signingKeyID == nil)
            try store.put("/b", "b\n")
            #expect(try store.seal()?.signature == nil)
            try store.close()
        }
    }

    // MARK: Inclusion proofs

    @Test func proofsOfEverySealedEventVerifyAndUnsealedEventsHaveNone() throws {
        try withSignedStore { store, key, _ in
            for block in store.blocks {
                for seq in block.first...block.last {
                    let proof = try store.inclusionProof(seq: seq)
                    guard case .success(let decoded) = InclusionProof.decode(proof.encoded) else {
                        Issue.record("proof of \(seq) does not decode"); continue
                    }
                    #expect(decoded == proof)
                    guard case .success(let verified) = proof.verify(trustedKeys: [key.publicKey]) else {
                        Issue.record("proof of \(seq) does not verify"); continue
                    }
                    #expect(verified.event == (try store.event(seq)))
                    #expect(verified.block == block && verified.signedBy == key.publicKey.id)
                }
            }
            let unsealed = try #require(throws: LayerError.self) { try store.inclusionProof(seq: store.headSequence) }
            #expect(unsealed.code == .notFound && unsealed.message.contains("not sealed"), "\(unsealed.message)")
            let beyond = try #require(throws: LayerError.self) { try store.inclusionProof(seq: store.headSequence + 1) }
            #expect(beyond.code == .outOfRange || beyond.code == .notFound, "\(beyond)")
        }
    }

    /// Every way to damage a proof is rejected: wrong index, size, sequence number, leaf (another
    /// event's line), root (a re-hashed header with another root), store, a flipped bit in each
    /// element, a path hash added or removed, a signature by another key.
    @Test func everyDamagedProofIsRejected() throws {
        try withSignedStore { store, key, _ in
            let block = store.blocks[2]  // 13 events: paths of 3 and 4 hashes
            let proof = try store.inclusionProof(seq: block.first + 6)
            let trusted = [key.publicKey]
            var rejected = 0
            func expectRejected(_ damaged: InclusionProof, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
                // Through the encoded form, as a file would carry it.
                switch InclusionProof.decode(damaged.encoded) {
                case .failure: rejected += 1
                case .success(let decoded):
                    if case .success = decoded.verify(trustedKeys: trusted) {
                        Issue.record("accepted: \(what)", sourceLocation: sourceLocation)
                    } else {
                        rejected += 1
                    }
                }
            }
            guard case .success = proof.verify(trustedKeys: trusted) else { Issue.record("the intact proof fails"); return }

            var p = proof
            p.index += 1; expectRejected(p, "index + 1")
            p = proof; p.index -= 1; expectRejected(p, "index - 1")
            p = proof; p.size += 1; expectRejected(p, "size + 1")
            p = proof; p.seq += 1; expectRejected(p, "seq + 1")
            p = proof; p.seq += 1; p.index += 1; expectRejected(p, "seq and index + 1")
            p = proof; p.storeID = "00000000-0000-4000-8000-000000000000"; expectRejected(p, "another store")
            // Wrong leaf: another event's (valid) line, with its own sequence number and index.
            let neighbour = try store.inclusionProof(seq: block.first + 7)
            p = proof; p.eventLine = neighbour.eventLine; expectRejected(p, "another event's line")
            p = proof; p.eventLine = neighbour.eventLine; p.seq += 1; p.index += 1; expectRejected(p, "another event's line, renumbered")
            // Wrong root: a header re-hashed around another root (and so no longer signed right).
            var forged = block
            forged.merkleRoot = SHA256.hash("another root")
            var forgedLine = BlockHeader.seal(&forged)
            forgedLine.removeLast()
            p = proof; p.blockLine = forgedLine; expectRejected(p, "another root, re-hashed")
            // ... even signed, by a key that is not trusted.
            let attacker = try Ed25519.PrivateKey.generate()
            try forged.sign(with: attacker, storeID: store.storeID)
            p = proof; p.blockLine = Array(forged.line.dropLast()); expectRejected(p, "another root, signed by another key")
            // The right block, but with its signature stripped.
            var stripped = block
            stripped.signature = nil
            p = proof; p.blockLine = Array(stripped.line.dropLast()); expectRejected(p, "an unsigned block")
            // Another block's line.
            p = proof; p.blockLine = Array(store.blocks[1].line.dropLast()); expectRejected(p, "another block")
            // Path hashes: added (at each end), removed (each one), swapped.
            p = proof; p.path.append(SHA256.hash("x")); expectRejected(p, "a hash appended")
            p = proof; p.path.insert(SHA256.hash("x"), at: 0); expectRejected(p, "a hash prepended")
            for i in proof.path.indices {
                p = proof; p.path.remove(at: i); expectRejected(p, "path hash \(i) removed")
            }
            p = proof; p.path.swapAt(0, 1); expectRejected(p, "path hashes swapped")
            // A flipped bit in every element: each byte of each path hash (one bit each), and
            // bytes all along the event and block lines.
            for i in proof.path.indices {
                for byte in 0..<32 {
                    var bytes = proof.path[i].bytes
                    bytes[byte] ^= UInt8(1 << (byte % 8))
                    p = proof; p.path[i] = Digest(bytes: bytes); expectRejected(p, "path \(i) byte \(byte)")
                }
            }
            for offset in stride(from: 0, to: proof.eventLine.count, by: 3) {
                p = proof; p.eventLine[offset] ^= 0x01; expectRejected(p, "event line byte \(offset)")
            }
            for offset in stride(from: 0, to: proof.blockLine.count, by: 3) {
                p = proof; p.blockLine[offset] ^= 0x01; expectRejected(p, "block line byte \(offset)")
            }
            // Bits flipped in the encoded proof itself (its numbers, keys and punctuation too).
            let encoded = proof.encoded
            for offset in stride(from: 0, to: encoded.count - 1, by: 5) {
                var bytes = encoded
                bytes[offset] ^= 0x04
                if case .success(let decoded) = InclusionProof.decode(bytes), case .success = decoded.verify(trustedKeys: trusted) {
                    Issue.record("accepted: encoded byte \(offset) flipped")
                } else {
                    rejected += 1
                }
            }
            #expect(rejected > 500, "\(rejected) damaged proofs rejected")
            // Without trusted keys, a consistent proof of a forged (re-hashed, unsigned) block is
            // consistent, but not authenticated: signedBy is nil.
            guard case .success(let unauthenticated) = proof.verify(trustedKeys: []) else { Issue.record("no-key verify failed"); return }
            #expect(unauthenticated.signedBy == nil)
        }
    }

    @Test func proofDecodingRejectsNonCanonicalAndOversizedInput() throws {
        try withSignedStore { store, _, _ in
            let encoded = try store.inclusionProof(seq: 3).encoded
            guard case .success = InclusionProof.decode(Array(encoded.dropLast())) else { Issue.record("no newline"); return }
            for damaged in [
                Array(" ".utf8) + encoded,
                encoded + Array("\n".utf8),
                Array(String(decoding: encoded, as: UTF8.self).replacingOccurrences(of: "\"seq\":3", with: "\"seq\":03").utf8),
                Array(String(decoding: encoded, as: UTF8.self).replacingOccurrences(of: "{\"proof\"", with: "{ \"proof\"").utf8),
                [UInt8](repeating: UInt8(ascii: "a"), count: InclusionProof.maximumSize + 1),
                [],
            ] {
                guard case .failure = InclusionProof.decode(damaged) else {
                    Issue.record("accepted: \(String(decoding: damaged.prefix(40), as: UTF8.self))"); continue
                }
            }
        }
    }
}
