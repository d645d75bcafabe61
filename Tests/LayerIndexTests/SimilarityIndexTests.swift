import Foundation
import LayerCore
import Testing

@testable import LayerIndex

private let tester = Provenance(uid: 1000, gid: 1000, pid: 4242, process: "tester")

private func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-index-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// A few config files, two of them bridges, committed to a new store.
private func makeConfigStore(_ dir: String) throws -> Store {
    try Store.create(at: dir + "/store", by: tester)
    let store = try Store.open(dir + "/store", options: .init(sealPolicy: .manual))
    let files: [(String, String)] = [
        ("/network/interfaces.d/br0.conf", "auto br0\niface br0 inet static\n    bridge_ports eth0 eth1\n    bridge_stp off\n    address 10.0.0.1/24\n"),
        ("/network/interfaces.d/eth2.conf", "auto eth2\niface eth2 inet dhcp\n"),
        ("/systemd/network/10-br1.netdev", "[NetDev]\nName=br1\nKind=bridge\n"),
        ("/ssh/sshd_config", "PermitRootLogin no\nPasswordAuthentication no\nPort 22\n"),
        ("/resolv.conf", "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch lab.example\n"),
        ("/hosts", "127.0.0.1 localhost\n10.0.0.2 edge-2.lab edge-2\n"),
        ("/nginx/sites/default", "server {\n  listen 80;\n  root /var/www/html;\n}\n"),
    ]
    _ = try store.commit(.mkdir(path: "/network"), by: tester)
    _ = try store.commit(.mkdir(path: "/network/interfaces.d"), by: tester)
    _ = try store.commit(.mkdir(path: "/systemd"), by: tester)
    _ = try store.commit(.mkdir(path: "/systemd/network"), by: tester)
    _ = try store.commit(.mkdir(path: "/ssh"), by: tester)
    _ = try store.commit(.mkdir(path: "/nginx"), by: tester)
    _ = try store.commit(.mkdir(path: "/nginx/sites"), by: tester)
    for (path, text) in files { _ = try store.commit(.write(path: path, content: Array(text.utf8)), by: tester) }
    // A second version of one file, and a rename: both versions stay findable.
    _ = try store.commit(.write(path: "/ssh/sshd_config", content: Array("PermitRootLogin prohibit-password\nPort 2222\n".utf8)), by: tester)
    return store
}

/// An embedder with another id (and dimension): an index built with it must not be reused.
private struct OtherEmbedder: Embedder {
    var id: String { "test-other-v1" }
    var dimension: Int { 8 }
    func embed(_ text: String) throws -> [Float] {
        var v = [Float](repeating: 0, count: 8)
        for byte in text.utf8 { v[Int(byte) % 8] += 1 }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? v.map { $0 / norm } : v
    }
}

@Suite struct SimilarityIndexTests {
    @Test func buildsFromTheLogAnswersAndReloads() throws {
        try withTemporaryDirectory { dir in
            let store = try makeConfigStore(dir)
            defer { try? store.close() }
            let index = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            try index.lock()
            index.load()
            #expect(index.status.state != .ready, "a missing index is built")
            try index.catchUp()
            #expect(index.status.state == .ready)
            #expect(index.status.versions == 8)
            #expect(index.status.behind == 0)
            let matches = try index.query("which interfaces are bridges", k: 3)
            #expect(Set(matches.prefix(2).map(\.path)) == ["/network/interfaces.d/br0.conf", "/systemd/network/10-br1.netdev"], "\(matches)")
            // Both versions of sshd_config are in the index.
            let ssh = try index.query("ssh root login", k: 8).filter { $0.path == "/ssh/sshd_config" }
            #expect(ssh.count == 2)

            // Reloaded by another instance: the same answers, nothing rebuilt.
            let again = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            again.load(readOnly: true)
            #expect(again.status.state == .ready)
            #expect(try again.query("which interfaces are bridges", k: 3) == matches)

            // Deleted, then rebuilt: the same answers.
            try FileManager.default.removeItem(atPath: dir + "/index/hnsw.bin")
            try FileManager.default.removeItem(atPath: dir + "/index/meta.json")
            index.releaseLockForTesting()
            let rebuilt = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            try rebuilt.lock()
            rebuilt.load()
            guard case .building = rebuilt.status.state else {
                Issue.record("a deleted index was not rebuilt")
                return
            }
            try rebuilt.catchUp()
            #expect(try rebuilt.query("which interfaces are bridges", k: 3).map(\.seq) == matches.map(\.seq))
        }
    }

    @Test func anotherEmbeddersOrStoresOrACorruptIndexIsRebuilt() throws {
        try withTemporaryDirectory { dir in
            let store = try makeConfigStore(dir)
            defer { try? store.close() }
            let built = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            try built.lock()
            built.load()
            try built.catchUp()

            func reason(_ embedder: any Embedder) -> String? {
                let index = SimilarityIndex(store: store, directory: dir + "/index", embedder: embedder)
                index.load(readOnly: true)
                if case .building(let reason) = index.status.state { return reason }
                return nil
            }
            #expect(reason(BuiltinEmbedder()) == nil)
            #expect(reason(OtherEmbedder())?.contains("embedder") == true)

            // Corrupt graph file.
            let graph = dir + "/index/hnsw.bin"
            let bytes = try #require(FileManager.default.contents(atPath: graph))
            try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: graph))
            #expect(reason(BuiltinEmbedder())?.contains("hnsw.bin") == true)
            try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: graph))
            #expect(reason(BuiltinEmbedder()) != nil)

            // Another store's index.
            try built.save()
            try Store.create(at: dir + "/other", by: tester)
            let other = try Store.open(dir + "/other", mode: .readOnly)
            let foreign = SimilarityIndex(store: other, directory: dir + "/index", embedder: BuiltinEmbedder())
            foreign.load(readOnly: true)
            guard case .building(let why) = foreign.status.state else {
                Issue.record("another store's index was used")
                return
            }
            #expect(why.contains("belongs to store"))
        }
    }

    @Test func anInterruptedBuildResumesAndEndsComplete() throws {
        try withTemporaryDirectory { dir in
            let store = try makeConfigStore(dir)
            defer { try? store.close() }
            for i in 0..<300 {
                _ = try store.commit(.write(path: "/gen-\(i).conf", content: Array("option value-\(i) setting \(i % 7)\n".utf8)), by: tester)
            }
            // A first build that saves every 50 versions and stops (as a crash would) part way.
            let first = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            first.saveEvery = 50
            try first.lock()
            first.load()
            var seen: UInt64 = 0
            struct Stop: Error {}
            do {
                try first.catchUp { done, _ in
                    seen = done
                    if done == 170 { first.simulateCrashForTesting() }
                }
            } catch {}
            #expect(seen >= 170)
            // The files on disk hold a consistent prefix; a new instance catches up from there.
            // (The first instance stands for a dead process: its lock goes with it.)
            first.releaseLockForTesting()
            let second = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            try second.lock()
            second.load()
            #expect(second.status.state == .ready)
            #expect(second.status.lastIndexed < store.headSequence)
            try second.catchUp()
            #expect(second.status.versions == 308)
            #expect(second.status.lastIndexed == store.headSequence)
            // Same answers as a build in one go.
            let whole = SimilarityIndex(store: store, directory: dir + "/whole", embedder: BuiltinEmbedder())
            try whole.lock()
            whole.load()
            try whole.catchUp()
            // (A graph grown in two sittings is not the same graph as one built in one go, so equal
            // scores may come in another order: compare the scores, and the best match.)
            for query in ["bridge", "ssh root login", "value-42", "nameserver"] {
                let resumed = try second.query(query, k: 5), direct = try whole.query(query, k: 5)
                #expect(resumed.first?.seq == direct.first?.seq, "\(query)")
                #expect(zip(resumed, direct).allSatisfy { abs($0.similarity - $1.similarity) < 1e-5 }, "\(query): \(resumed) vs \(direct)")
            }
        }
    }

    @Test func queriesAreRefusedWhileBuildingAndForBadInput() throws {
        try withTemporaryDirectory { dir in
            let store = try makeConfigStore(dir)
            defer { try? store.close() }
            let index = SimilarityIndex(store: store, directory: dir + "/index", embedder: BuiltinEmbedder())
            index.load()
            #expect(throws: SimilarityError.self) { try index.query("bridge", k: 5) }
            try index.catchUp()
            #expect(throws: SimilarityError.self) { try index.query("   ", k: 5) }
            #expect(throws: SimilarityError.self) { try index.query("bridge", k: 0) }
            #expect(try index.query("bridge", k: 1000).count == 8)
        }
    }

    /// The index holds vectors derived from every version's content: its directory is 0700,
    /// also when it existed before with a wider mode.
    @Test func indexDirectoryIsPrivate() throws {
        try withTemporaryDirectory { dir in
            let store = try makeConfigStore(dir)
            defer { try? store.close() }
            let old = umask(0o022)
            defer { umask(old) }
            try FileManager.default.createDirectory(atPath: dir + "/wide", withIntermediateDirectories: false)
            #expect(chmod(dir + "/wide", 0o755) == 0)
            for directory in [dir + "/var/lib/layerfs/index/x", dir + "/wide"] {
                let index = SimilarityIndex(store: store, directory: directory, embedder: BuiltinEmbedder())
                try index.lock()
                index.load()
                try index.catchUp()
                try index.save()
                var st = stat()
                #expect(stat(directory, &st) == 0)
                #expect(st.st_mode & 0o7777 == 0o700, "\(directory): \(String(st.st_mode & 0o7777, radix: 8))")
            }
        }
    }
}

