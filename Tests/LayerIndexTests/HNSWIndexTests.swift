import COpenBLAS
import Foundation
import Synchronization
import Testing

@testable import LayerIndex

/// A small seeded generator (SplitMix64), so every run sees the same vectors.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    mutating func unit() -> Double { (Double(next() >> 11) + 1) / 9_007_199_254_740_992 }
}

/// `count` random unit vectors (uniform on the sphere: normalized Gaussians), row-major.
private func randomUnitVectors(_ count: Int, dimension: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    var out = [Float](repeating: 0, count: count * dimension)
    out.withUnsafeMutableBufferPointer { buf in
        var i = 0
        while i < buf.count {
            // Box-Muller: two Gaussians per pair of uniforms.
            let r = (-2 * Foundation.log(rng.unit())).squareRoot()
            let t = 2 * Double.pi * rng.unit()
            buf[i] = Float(r * Foundation.cos(t))
            if i + 1 < buf.count { buf[i + 1] = Float(r * Foundation.sin(t)) }
            i += 2
        }
        for row in 0..<count {
            var norm: Float = 0
            for j in 0..<dimension { norm += buf[row * dimension + j] * buf[row * dimension + j] }
            let scale = 1 / norm.squareRoot()
            for j in 0..<dimension { buf[row * dimension + j] *= scale }
        }
    }
    return out
}

private func rows(_ flat: [Float], dimension: Int) -> [[Float]] {
    stride(from: 0, to: flat.count, by: dimension).map { Array(flat[$0..<($0 + dimension)]) }
}

private func temporaryDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("hnsw-tests-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// A small index of `count` random vectors labelled 0..<count.
private func smallIndex(count: Int, dimension: Int, seed: UInt64 = 7, capacity: Int = 16) throws
    -> (HNSWIndex, [[Float]])
{
    let vectors = rows(randomUnitVectors(count, dimension: dimension, seed: seed), dimension: dimension)
    let index = try HNSWIndex(dimension: dimension, capacity: capacity, m: 16, efConstruction: 100)
    for (i, v) in vectors.enumerated() { try index.add(v, label: UInt64(i)) }
    return (index, vectors)
}

@Suite struct HNSWIndexTests {
    // (a) recall@10 against exact search.
    @Test func recallAt10AgainstExactSearchOn100kVectors() throws {
        let n = 100_000, dim = 64, queries = 200, k = 10
        let data = randomUnitVectors(n, dimension: dim, seed: 1)
        let query = randomUnitVectors(queries, dimension: dim, seed: 2)
        let clock = ContinuousClock()

        // Exact: all inner products with one matrix product (OpenBLAS), then the top 10 per query.
        var exact = [[Int]]()
        let exactTime = try clock.measure {
            var scores = [Float](repeating: 0, count: queries * n)
            query.withUnsafeBufferPointer { q in
                data.withUnsafeBufferPointer { d in
                    scores.withUnsafeMutableBufferPointer { s in
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(queries), Int32(n),
                            Int32(dim), 1, q.baseAddress, Int32(dim), d.baseAddress, Int32(dim), 0,
                            s.baseAddress, Int32(n))
                    }
                }
            }
            exact = try scores.withUnsafeBufferPointer { s in
                try (0..<queries).map { qi in
                    // Insertion into a sorted top-k list; most candidates fail the first comparison.
                    var top = [(score: Float, id: Int)]()
                    let row = s.baseAddress! + qi * n
                    for id in 0..<n {
                        let score = row[id]
                        if top.count == k, score <= top[k - 1].score { continue }
                        var at = top.count
                        while at > 0, top[at - 1].score < score { at -= 1 }
                        top.insert((score, id), at: at)
                        if top.count > k { top.removeLast() }
                    }
                    try #require(top.count == k)
                    return top.map(\.id)
                }
            }
        }

        // The index's defaults (M 32, ef_construction 200), built with 2 threads.
        let index = try HNSWIndex(dimension: dim, capacity: n)
        let m = index.m, efConstruction = index.efConstruction, threads = 2
        let vectors = rows(data, dimension: dim)
        let buildTime = try clock.measure {
            try index.add(vectors, labels: (0..<n).map { UInt64($0) }, threads: threads)
        }
        #expect(index.count == n)

        let queryRows = rows(query, dimension: dim)
        var report = "HNSW recall@10, \(n) random unit vectors, dimension \(dim), M \(m), "
            + "ef_construction \(efConstruction), \(queries) queries:\n"
            + "  build \(String(format: "%.1f", seconds(buildTime))) s with \(threads) threads "
            + "(\(Int(Double(n) / seconds(buildTime))) vectors/s); exact search (BLAS + top-k) "
            + "\(String(format: "%.2f", seconds(exactTime))) s\n"
        var recallAtDefault = 0.0
        for ef in [10, 64, 128, 256, 512] {
            var hits = 0
            var results = [[(label: UInt64, similarity: Float)]]()
            let time = try clock.measure {
                results = try queryRows.map { try index.search($0, k: k, ef: ef) }
            }
            for (qi, result) in results.enumerated() {
                #expect(result.count == k)
                #expect(zip(result, result.dropFirst()).allSatisfy { $0.similarity >= $1.similarity })
                let truth = Set(exact[qi])
                hits += result.filter { truth.contains(Int($0.label)) }.count
            }
            let recall = Double(hits) / Double(queries * k)
            if ef == HNSWIndex.defaultEf { recallAtDefault = recall }
            report += "  ef \(ef): recall@10 \(String(format: "%.4f", recall)), "
                + "\(String(format: "%.3f", seconds(time) * 1000 / Double(queries))) ms/query\n"
        }
        print(report, terminator: "")
        #expect(recallAtDefault >= 0.95, "recall@10 at the default ef: \(recallAtDefault)")

        // The default (ef nil) is max(k, defaultEf).
        let viaDefault = try index.search(queryRows[0], k: k)
        let viaExplicit = try index.search(queryRows[0], k: k, ef: HNSWIndex.defaultEf)
        #expect(viaDefault.map(\.label) == viaExplicit.map(\.label))
        // Similarity is the inner product.
        let best = viaDefault[0]
        let dot = zip(queryRows[0], vectors[Int(best.label)]).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(abs(best.similarity - dot) < 1e-5)
    }

    // (b) save -> load -> the same results.
    @Test func saveThenLoadGivesIdenticalResults() throws {
        let dim = 32
        let (index, _) = try smallIndex(count: 3000, dimension: dim)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/index.hnsw"
        try index.save(to: path)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        // Saving again replaces the file.
        try index.save(to: path)

        let loaded = try HNSWIndex.load(path: path, dimension: dim)
        #expect(loaded.count == index.count)
        #expect(loaded.m == 16 && loaded.efConstruction == 100)
        #expect(loaded.dimension == dim)
        for q in rows(randomUnitVectors(100, dimension: dim, seed: 99), dimension: dim) {
            let a = try index.search(q, k: 10), b = try loaded.search(q, k: 10)
            #expect(a.map(\.label) == b.map(\.label))
            #expect(a.map(\.similarity) == b.map(\.similarity))
        }
        // The loaded index keeps growing and saving.
        try loaded.add(randomUnitVectors(1, dimension: dim, seed: 5), label: 1_000_000)
        #expect(loaded.count == 3001)
        try loaded.save(to: path)
        #expect(try HNSWIndex.load(path: path, dimension: dim).count == 3001)

        // An empty index round-trips too.
        let empty = try HNSWIndex(dimension: dim, capacity: 0)
        try empty.save(to: dir + "/empty.hnsw")
        let emptyLoaded = try HNSWIndex.load(path: dir + "/empty.hnsw", dimension: dim)
        #expect(emptyLoaded.count == 0)
        #expect(try emptyLoaded.search(randomUnitVectors(1, dimension: dim, seed: 3), k: 5).isEmpty)
        try emptyLoaded.add(randomUnitVectors(1, dimension: dim, seed: 3), label: 1)
        #expect(try emptyLoaded.search(randomUnitVectors(1, dimension: dim, seed: 3), k: 5).map(\.label) == [1])
    }

    @Test func sameSeedAndOrderBuildTheSameIndex() throws {
        let dim = 24
        let (a, _) = try smallIndex(count: 2000, dimension: dim)
        let (b, _) = try smallIndex(count: 2000, dimension: dim)
        for q in rows(randomUnitVectors(50, dimension: dim, seed: 11), dimension: dim) {
            let ra = try a.search(q, k: 10, ef: 20), rb = try b.search(q, k: 10, ef: 20)
            #expect(ra.map(\.label) == rb.map(\.label))
        }
    }

    // (c) bad files and bad dimensions are errors, never crashes.
    @Test func badFilesAreErrorsNotCrashes() throws {
        let dim = 16
        let (index, _) = try smallIndex(count: 500, dimension: dim)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = dir + "/good.hnsw"
        try index.save(to: good)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good)))

        func expectLoadError(_ kind: IndexError.Kind, _ path: String, dimension: Int = dim,
                             sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try HNSWIndex.load(path: path, dimension: dimension)
                Issue.record("loading \(path) succeeded", sourceLocation: sourceLocation)
            } catch let error as IndexError {
                #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
                #expect(error.path == path, sourceLocation: sourceLocation)
                #expect(error.message.contains(path), "\(error)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
        }
        func write(_ name: String, _ content: [UInt8]) throws -> String {
            let path = dir + "/" + name
            try Data(content).write(to: URL(fileURLWithPath: path))
            return path
        }

        // Missing.
        expectLoadError(.missing, dir + "/nothing-here.hnsw")
        // Truncated at every interesting place: empty, inside the header, just after it, inside
        // the vectors, inside the link lists, one byte short.
        for length in [0, 1, 50, 95, 96, 97, 1000, bytes.count / 2, bytes.count - 100, bytes.count - 1] {
            expectLoadError(.corrupt, try write("truncated-\(length).hnsw", Array(bytes[..<length])))
        }
        // Trailing garbage.
        expectLoadError(.corrupt, try write("longer.hnsw", bytes + [0, 0, 0, 0]))
        // Random bytes of several sizes, and random bytes after a valid header.
        var rng = SplitMix64(seed: 42)
        for size in [7, 96, 4096, 1 << 20] {
            let random = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            expectLoadError(.corrupt, try write("random-\(size).hnsw", random))
        }
        let afterHeader = Array(bytes[..<96]) + (96..<bytes.count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        expectLoadError(.corrupt, try write("random-body.hnsw", afterHeader))
        // A well-formed layout whose graph is damaged: a level-0 link of element 0 pointing past
        // the end (the first link sits 4 bytes into the element, after the count).
        var badLink = bytes
        for i in 0..<4 { badLink[96 + 4 + i] = 0xFF }
        expectLoadError(.corrupt, try write("bad-link.hnsw", badLink))
        // A link count larger than the list allows (count is the first 2 bytes of the list).
        var badCount = bytes
        badCount[96] = 0xFF
        badCount[97] = 0x7F
        expectLoadError(.corrupt, try write("bad-count.hnsw", badCount))
        // A NaN in a vector (element 0's vector starts after its 2*M+1 link words).
        var nan = bytes
        let vectorStart = 96 + (2 * 16 + 1) * 4
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { nanBytes in
            for i in 0..<4 { nan[vectorStart + i] = nanBytes[i] }
        }
        expectLoadError(.corrupt, try write("nan.hnsw", nan))
        // A header field changed (M).
        var badM = bytes
        badM[96 - 24] ^= 0x01
        expectLoadError(.corrupt, try write("bad-m.hnsw", badM))
        // A directory is not an index.
        expectLoadError(.io, dir)
        // Wrong dimension: a valid index of dimension 16 loaded as 17 or 8.
        expectLoadError(.dimensionMismatch, good, dimension: 17)
        expectLoadError(.dimensionMismatch, good, dimension: 8)
        // The good file still loads after all that.
        #expect(try HNSWIndex.load(path: good, dimension: dim).count == 500)

        // Vectors of the wrong length, or not finite.
        #expect(throws: IndexError.self) { try index.add([Float](repeating: 0.25, count: dim + 1), label: 1) }
        #expect(throws: IndexError.self) { try index.search([Float](repeating: 0.25, count: dim - 1), k: 3) }
        var withNaN = [Float](repeating: 0.25, count: dim)
        withNaN[3] = .nan
        #expect(throws: IndexError.self) { try index.add(withNaN, label: 1) }
        #expect(throws: IndexError.self) { try index.search(withNaN, k: 3) }
        #expect(throws: IndexError.self) {
            try index.add([[Float](repeating: 0.25, count: dim), [0.5]], labels: [1, 2])
        }
        do {
            try index.add([Float](repeating: 0.25, count: 3), label: 9)
        } catch let error as IndexError {
            #expect(error.kind == .dimensionMismatch)
        }
        #expect(index.count == 500)

        // Saving where it cannot: an error naming the path, nothing left behind.
        #expect(throws: IndexError.self) { try index.save(to: dir + "/no/such/dir/index.hnsw") }
        // Bad parameters.
        #expect(throws: IndexError.self) { try HNSWIndex(dimension: 0) }
        #expect(throws: IndexError.self) { try HNSWIndex(dimension: 8, m: 1) }
    }

    // (d) growth past the initial capacity.
    @Test func growsPastItsInitialCapacity() throws {
        let dim = 32, n = 1000
        let (index, vectors) = try smallIndex(count: n, dimension: dim, capacity: 4)
        #expect(index.count == n)
        #expect(index.capacity == 1024)  // 4 doubled 8 times
        var selfFound = 0
        for (i, v) in vectors.enumerated() {
            let result = try index.search(v, k: 1)
            if result.first?.label == UInt64(i) {
                selfFound += 1
                #expect(abs(result[0].similarity - 1) < 1e-5)
            }
        }
        #expect(selfFound >= n * 99 / 100, "\(selfFound) of \(n) vectors are their own nearest")

        // A batch grows once, in parallel too.
        let batch = rows(randomUnitVectors(3000, dimension: dim, seed: 8), dimension: dim)
        try index.add(batch, labels: (0..<3000).map { UInt64(10_000 + $0) }, threads: 2)
        #expect(index.count == n + 3000)
        #expect(index.capacity == 4096)
        #expect(try index.search(batch[1234], k: 1).first?.label == 11_234)

        // Re-adding a label replaces its vector instead of adding one.
        try index.add(batch[0], label: 0)
        #expect(index.count == n + 3000)
        #expect(try index.search(batch[0], k: 2).map(\.label).sorted() == [0, 10_000])
    }

    @Test func deletedLabelsAreNotReturned() throws {
        let dim = 16
        let (index, vectors) = try smallIndex(count: 300, dimension: dim)
        try index.markDeleted(5)
        #expect(index.count == 299 && index.deletedCount == 1)
        #expect(try !index.search(vectors[5], k: 10).contains { $0.label == 5 })
        #expect(throws: IndexError.self) { try index.markDeleted(5) }
        #expect(throws: IndexError.self) { try index.markDeleted(12345) }
        try index.add(vectors[5], label: 5)  // back
        #expect(index.count == 300 && index.deletedCount == 0)
        #expect(try index.search(vectors[5], k: 1).first?.label == 5)
    }

    // (e) searches from several threads while another adds (and saves once).
    @Test func concurrentSearchesWhileAdding() throws {
        let dim = 32, initial = 2000, added = 6000, total = initial + added
        let all = rows(randomUnitVectors(total, dimension: dim, seed: 21), dimension: dim)
        let index = try HNSWIndex(dimension: dim, capacity: 256, m: 16, efConstruction: 100)
        try index.add(Array(all[..<initial]), labels: (0..<initial).map { UInt64($0) })
        let queries = rows(randomUnitVectors(64, dimension: dim, seed: 22), dimension: dim)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // Real threads (not tasks), so the searches really interleave with the adds.
        final class Shared: Sendable {
            let adding = Atomic<Bool>(true)
            let searches = Atomic<Int>(0)
            let problems = Mutex<[String]>([])
            func problem(_ text: String) { problems.withLock { $0.append(text) } }
        }
        let shared = Shared()
        let finished = DispatchGroup()
        let searchers = 3
        var searchesBeforeAdding = 0
        for worker in 0..<searchers {
            finished.enter()
            Thread {
                defer { finished.leave() }
                var n = 0
                repeat {
                    let q = queries[(n + worker) % queries.count]
                    // Two ef values, so the exclusive ef change interleaves too.
                    let ef = worker == 0 ? 40 : HNSWIndex.defaultEf
                    do {
                        let result = try index.search(q, k: 10, ef: ef)
                        if result.count != 10 { shared.problem("\(result.count) results") }
                        for r in result where r.label >= UInt64(total) || abs(r.similarity) > 1.001 {
                            shared.problem("bad result \(r)")
                        }
                        if !zip(result, result.dropFirst()).allSatisfy({ $0.similarity >= $1.similarity }) {
                            shared.problem("results out of order")
                        }
                    } catch {
                        shared.problem("search: \(error)")
                    }
                    n += 1
                    shared.searches.add(1, ordering: .relaxed)
                } while shared.adding.load(ordering: .acquiring)
            }.start()
        }
        // Start adding once every searcher is running.
        while shared.searches.load(ordering: .relaxed) < searchers { usleep(1000) }
        searchesBeforeAdding = shared.searches.load(ordering: .relaxed)
        finished.enter()
        Thread {
            defer {
                shared.adding.store(false, ordering: .releasing)
                finished.leave()
            }
            do {
                for i in initial..<total {
                    try index.add(all[i], label: UInt64(i))
                    if i == initial + added / 2 { try index.save(to: dir + "/mid.hnsw") }
                }
            } catch {
                shared.problem("add: \(error)")
            }
        }.start()
        finished.wait()

        let problems = shared.problems.withLock { $0 }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        let during = shared.searches.load(ordering: .relaxed) - searchesBeforeAdding
        #expect(during > 100, "only \(during) searches ran during the adds")
        #expect(index.count == total)
        let mid = try HNSWIndex.load(path: dir + "/mid.hnsw", dimension: dim)
        #expect(mid.count == initial + added / 2 + 1)
        print("HNSW concurrency: \(during) searches on \(searchers) threads ran during \(added) adds")
    }
}
