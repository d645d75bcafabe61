// `_commit-cpu <dir>` (diagnostic, not part of `all`): the CPU cost of Store.commit alone. Run it
// on tmpfs (/dev/shm), where fdatasync costs next to nothing: commits back to back (hot caches),
// then with a 200 us sleep before each (caches as cold as after a real fdatasync's wait).

#if canImport(Glibc)
import Glibc
#endif
import LayerCore

enum Probe {
    static func commitCPU(directory: String) throws {
        print("-- Store.commit CPU cost: \(fileSystemType(directory)) at \(directory) --")
        let storePath = directory + "/store"
        try createStore(at: storePath)
        let store = try Store.open(storePath, mode: .readWrite, options: quietOptions(.manual))
        defer { try? store.close() }
        let maker = ConfigText(seed: 7)
        var rng = SplitMix64(seed: 11)
        var revision: UInt64 = 0
        var t = Table(["", "median us", "p99 us"])
        for (label, sleepUs) in [("back to back", 0), ("200 us idle before each", 200), ("back to back", 0), ("200 us idle before each", 200)] {
            var samples: [UInt64] = []
            for _ in 0..<2000 {
                revision += 1
                let content = maker.make(name: "/cpu.conf", revision: revision, length: 180 + Int(rng.next() % 41), rng: &rng)
                if sleepUs > 0 { usleep(UInt32(sleepUs)) }
                let t0 = nowNanoseconds()
                try store.commit(.write(path: "/cpu.conf", content: content), by: benchProvenance)
                samples.append(nowNanoseconds() - t0)
            }
            let s = Summary(samples)
            t.add([label, us(s.median), us(s.p99)])
        }
        t.print()
    }
}
