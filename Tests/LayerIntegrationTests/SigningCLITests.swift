// Signed blocks through the CLI (keygen, signing-key, verify --pubkey, prove, verify-proof), and the
// attack signatures exist for: a history rewritten whole, every hash, Merkle root, block header and
// head recomputed, which `verify` alone accepts and `verify --pubkey` catches.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SigningCLITests {
    /// Runs `layerfs` and requires success.
    @discardableResult
    func layerfs(_ arguments: String...) throws -> CLIResult {
        let result = try CLI.run(arguments)
        #expect(result.status == 0, "layerfs \(arguments.joined(separator: " ")): \(result.stderr)")
        return result
    }

    /// A store signed by `dir/key`, with three blocks and one unsealed event.
    func makeSignedStore(_ dir: String) throws -> String {
        let store = dir + "/store", tree = dir + "/tree"
        try layerfs("init", store)
        let keygen = try layerfs("keygen", dir + "/key", "--store", store)
        #expect(keygen.stdout.contains("key id"))
        #expect(try FileManager.default.attributesOfItem(atPath: dir + "/key")[.posixPermissions] as? Int == 0o600)
        try Tree.mkdir(tree)
        for round in 1...3 {
            for i in 0..<(3 + round) { try Tree.write(tree + "/file\(i).conf", "round \(round) file \(i)\nmtu \(1400 + round)\n") }
            try layerfs("import", store, tree, "--seal")
        }
        try Tree.write(tree + "/late.conf", "after the last block\n")
        try layerfs("import", store, tree)
        return store
    }

    @Test func keygenSigningKeyAndVerifyWithPublicKeys() throws {
        try withScratch { dir in
            let store = try makeSignedStore(dir)
            let verified = try layerfs("verify", store, "--pubkey", dir + "/key.pub")
            #expect(verified.stdout.contains("signatures 3 of 3 blocks signed by trusted keys"), "\(verified.stdout)")
            #expect(verified.stdout.contains("1 unsealed event not yet covered"), "\(verified.stdout)")
            // keygen refuses to overwrite; a missing or wrong public key is a clear error.
            let again = try CLI.run(["keygen", dir + "/key"])
            #expect(again.status == 73 && again.stderr.contains("never overwrites"), "\(again.stderr)")
            let missing = try CLI.run(["verify", store, "--pubkey", dir + "/nope.pub"])
            #expect(missing.status == 66 && missing.stderr.contains("nope.pub"), "\(missing.stderr)")
            let wrongKind = try CLI.run(["verify", store, "--pubkey", dir + "/key"])
            #expect(wrongKind.status == 64 && wrongKind.stderr.contains("not a PEM public key"), "\(wrongKind.stderr)")

            // Rotation: a new key signs the next block; verify needs both public keys.
            try layerfs("keygen", dir + "/key2")
            #expect(try layerfs("signing-key", store, dir + "/key2").stdout.contains("key id"))
            try layerfs("seal", store)
            let onlyOld = try CLI.run(["verify", store, "--pubkey", dir + "/key.pub"])
            #expect(onlyOld.status == 65 && onlyOld.stderr.contains("block 4") && onlyOld.stderr.contains("not a trusted key"), "\(onlyOld.stderr)")
            let onlyNew = try CLI.run(["verify", store, "--pubkey", dir + "/key2.pub"])
            #expect(onlyNew.status == 65 && onlyNew.stderr.contains("block 1 "), "\(onlyNew.stderr)")
            #expect(try layerfs("verify", store, "--pubkey", dir + "/key.pub", "--pubkey", dir + "/key2.pub").stdout.contains("signatures 4 of 4"))

            // --none stops signing: the next block is unsigned, and verify --pubkey names it.
            #expect(try layerfs("signing-key", store, "--none").stdout.contains("none"))
            try Tree.write(dir + "/tree/later.conf", "x\n")
            try layerfs("import", store, dir + "/tree", "--seal")
            let unsigned = try CLI.run(["verify", store, "--pubkey", dir + "/key.pub", "--pubkey", dir + "/key2.pub"])
            #expect(unsigned.status == 65 && unsigned.stderr.contains("block 5") && unsigned.stderr.contains("not signed"), "\(unsigned.stderr)")
            // A key the writer cannot read stops it rather than sealing unsigned blocks.
            try layerfs("signing-key", store, dir + "/key2")
            try FileManager.default.removeItem(atPath: dir + "/key2")
            let stopped = try CLI.run(["seal", store])
            #expect(stopped.status != 0 && stopped.stderr.contains("key2"), "\(stopped.stderr)")
        }
    }

    /// The attack: rewrite the content of an early event and recompute everything after it, the
    /// chain, the Merkle roots, the block headers (signed with the attacker's own key) and both heads.
    @Test func aWholeLogRewrittenWithRecomputedHashesIsCaughtOnlyBySignatures() throws {
        try withScratch { dir in
            let store = try makeSignedStore(dir)
            let lines = try String(contentsOfFile: store + "/events.jsonl", encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
            var events = try lines.map { line -> Event in
                guard case .success(let e) = EventCodec.decode(line: line) else { throw HarnessError("line does not decode") }
                return e
            }
            let target = try #require(events.firstIndex { $0.operation == .write })
            events[target].content = .inline(Array("forged content\n".utf8))
            events[target].size = 15
            var previous = Digest.zero
            var out: [UInt8] = []
            for i in events.indices {
                events[i].previousHash = previous
                out += EventCodec.seal(&events[i])
                previous = events[i].hash
            }
            try Data(out).write(to: URL(fileURLWithPath: store + "/events.jsonl"))
            let attacker = try Ed25519.PrivateKey.generate()
            let storeID = try #require(events[0].storeID)
            let blockLines = try String(contentsOfFile: store + "/blocks.jsonl", encoding: .utf8).split(separator: "\n")
            var blocksOut: [UInt8] = []
            var previousBlock = Digest.zero
            var lastBlock: BlockHeader?
            for line in blockLines {
                guard case .success(var header) = BlockHeader.decode(line: Array(line.utf8)) else { throw HarnessError("block does not decode") }
                header.merkleRoot = MerkleTree.root(events[Int(header.first)...Int(header.last)].map(\.hash))
                header.previousHash = previousBlock
                _ = BlockHeader.seal(&header)
                try header.sign(with: attacker, storeID: storeID)
                blocksOut += header.line
                previousBlock = header.hash
                lastBlock = header
            }
            try Data(blocksOut).write(to: URL(fileURLWithPath: store + "/blocks.jsonl"))
            func head(_ hash: Digest, _ n: UInt64) -> Data { Data((hash.hex + " " + String(format: "%020llu", n) + "\n").utf8) }
            try head(previous, events.last!.seq).write(to: URL(fileURLWithPath: store + "/metadata/current_hash"))
            try head(previousBlock, lastBlock!.number).write(to: URL(fileURLWithPath: store + "/metadata/current_block"))

            // The hashes alone cannot tell: the rewritten store verifies, and shows the forgery.
            let plain = try CLI.run(["verify", store])
            #expect(plain.status == 0 && plain.stdout.contains("OK"), "\(plain.stdout)\(plain.stderr)")
            #expect(try layerfs("log", store, "--json").stdout.contains("forged content"))
            // The signatures can: the first block is signed by a key nobody trusts.
            let signed = try CLI.run(["verify", store, "--pubkey", dir + "/key.pub"])
            #expect(signed.status == 65, "\(signed.stdout)")
            #expect(signed.stderr.contains("block 1 (events 0...") && signed.stderr.contains("not a trusted key"), "\(signed.stderr)")
            // Keeping the original signatures on the rewritten headers does not help: they sign
            // the original hashes.
            var withOriginalSignatures: [UInt8] = []
            for (forgedLine, originalLine) in zip(String(decoding: blocksOut, as: UTF8.self).split(separator: "\n"), blockLines) {
                guard case .success(var forged) = BlockHeader.decode(line: Array(forgedLine.utf8)),
                    case .success(let original) = BlockHeader.decode(line: Array(originalLine.utf8))
                else { throw HarnessError("blocks do not decode") }
                forged.signature = original.signature
                withOriginalSignatures += forged.line
            }
            try Data(withOriginalSignatures).write(to: URL(fileURLWithPath: store + "/blocks.jsonl"))
            #expect(try CLI.run(["verify", store]).status == 0)
            let replayed = try CLI.run(["verify", store, "--pubkey", dir + "/key.pub"])
            #expect(replayed.status == 65 && replayed.stderr.contains("block 1 (") && replayed.stderr.contains("does not verify"), "\(replayed.stderr)")
        }
    }

    @Test func proveAndVerifyProofThroughTheCLI() throws {
        try withScratch { dir in
            let store = try makeSignedStore(dir)
            let proofPath = dir + "/p.proof"
            try layerfs("prove", store, "--seq", "5", "--output", proofPath)
            let ok = try layerfs("verify-proof", proofPath, "--pubkey", dir + "/key.pub", "--store", store)
            #expect(ok.stdout.contains("signature  valid") && ok.stdout.hasSuffix("OK\n"), "\(ok.stdout)")
            let unauthenticated = try layerfs("verify-proof", proofPath)
            #expect(unauthenticated.stdout.contains("not checked"), "\(unauthenticated.stdout)")
            // Standard output and standard input carry the same proof.
            let printed = try layerfs("prove", store, "--seq", "5").stdoutBytes
            #expect(printed == Array(try Data(contentsOf: URL(fileURLWithPath: proofPath))))
            // Refusals: an unsealed event (66), a damaged proof (65), another key (65), another store (65).
            let unsealed = try CLI.run(["prove", store, "--seq", "16"])
            #expect(unsealed.status == 66 && unsealed.stderr.contains("not sealed"), "\(unsealed.stderr)")
            var damaged = Array(try Data(contentsOf: URL(fileURLWithPath: proofPath)))
            let at = damaged.count / 2
            damaged[at] = damaged[at] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            try Data(damaged).write(to: URL(fileURLWithPath: dir + "/bad.proof"))
            let bad = try CLI.run(["verify-proof", dir + "/bad.proof"])
            #expect(bad.status == 65 && bad.stderr.contains("proof rejected"), "\(bad.stderr)")
            try layerfs("keygen", dir + "/other")
            let otherKey = try CLI.run(["verify-proof", proofPath, "--pubkey", dir + "/other.pub"])
            #expect(otherKey.status == 65 && otherKey.stderr.contains("not a trusted key"), "\(otherKey.stderr)")
            try layerfs("init", dir + "/another")
            let otherStore = try CLI.run(["verify-proof", proofPath, "--store", dir + "/another"])
            #expect(otherStore.status == 65 && otherStore.stderr.contains("is store"), "\(otherStore.stderr)")
        }
    }
}

/// A scoped scratch directory, removed afterwards.
private func withScratch(_ body: (String) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-sign-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try body(dir)
}
