import Foundation
import LayerCore
import Testing

@testable import LayerFS

/// The namespace and node table without a kernel: what each name resolves to, identities, and
/// lookup counts.
@Suite struct NamespaceTests {
    /// Runs `body` with a namespace over the sample store (see `buildSampleStore`).
    func withSample(_ body: (Namespace) throws -> Void) throws {
        try withScratchDirectory { (dir: String) throws in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let writer = try Store.open(path, mode: .readWrite, options: Store.Options(sealPolicy: .manual))
            try buildSampleStore(writer)
            try writer.close()
            let store = try Store.open(path, mode: .readOnly, options: Store.Options(sealPolicy: .manual))
            try body(Namespace(store: store, showAt: false))
        }
    }

    @Test func versionsHaveOneIdInEveryView() throws {
        try withSample { (ns: Namespace) throws in
            let present = Node.present(NodeID.root)
            let latest = try ns.lookup(.timeRoot, "latest")
            let t5 = try ns.lookup(.timeRoot, ns.store.time(ofSequence: 5).canonical)
            let block = try ns.lookup(.blockRoot, "1")
            let motdNow = try ns.lookup(ns.lookup(latest, "etc"), "motd")
            let motdThen = try ns.lookup(ns.lookup(t5, "etc"), "motd")
            let motdBlock = try ns.lookup(ns.lookup(block, "etc"), "motd")
            #expect(motdNow == motdThen && motdThen == motdBlock)
            let hostsNow = try ns.lookup(ns.lookup(latest, "etc"), "hosts")
            let hostsThen = try ns.lookup(ns.lookup(t5, "etc"), "hosts")
            #expect(ns.table.remember(hostsNow) != ns.table.remember(hostsThen))
            // Directories are per view: /etc now and /etc at event 5 are different nodes.
            let etcNow = ns.table.remember(try ns.lookup(latest, "etc"))
            let etcThen = ns.table.remember(try ns.lookup(t5, "etc"))
            #expect(etcNow != etcThen)
            #expect(NodeID.isSynthetic(etcNow) && NodeID.isSynthetic(etcThen))
            // The present is live: its objects have ids of their own, stable across lookups.
            guard case .present(let etcLive) = try ns.lookup(present, "etc") else {
                Issue.record("the present's /etc is not a present object")
                return
            }
            #expect(NodeID.isPresent(etcLive) && !NodeID.isSynthetic(etcLive))
            #expect(try ns.lookup(present, "etc") == .present(etcLive))
            #expect(try ns.attributes(.present(etcLive), id: etcLive).type == .directory)
        }
    }

    @Test func lookupCountsRiseWithRepliesAndFallWithForgets() throws {
        try withSample { (ns: Namespace) throws in
            let etc = try ns.lookup(ns.lookup(.timeRoot, "latest"), "etc")
            let id = ns.table.remember(etc)
            #expect(ns.table.remember(etc) == id)
            #expect(ns.table.lookupCount(id) == 2)
            ns.table.forget(id, count: 1)
            #expect(ns.table.node(id) == etc)
            ns.table.forget(id, count: 1)
            #expect(ns.table.node(id) == nil)
            #expect(ns.table.liveCount == 0)
            // Looked up again, a directory gets its old id back: stable for the mount's life.
            #expect(ns.table.remember(etc) == id)
            // Fixed nodes always resolve, and forgetting them is harmless.
            ns.table.forget(NodeID.root, count: 5)
            #expect(ns.table.node(NodeID.root) == .present(NodeID.root))
            #expect(ns.table.node(NodeID.timeRoot) == .timeRoot)
        }
    }

    /// Walking thousands of distinct @time directories must not grow the table for the mount's
    /// life: only nodes the kernel holds, and the most recently forgotten ones, keep an id.
    @Test func forgottenDirectoriesKeepTheirIdsOnlyUpToTheLimit() {
        let table = NodeTable(forgottenLimit: 100)
        func dir(_ n: Int) -> Node {
            .directory(View(kind: .time("t\(n)"), seq: UInt64(n + 1), isImmutable: true), path: "/etc")
        }
        let held = table.remember(dir(-1))  // the kernel keeps this one all along
        var first: [UInt64] = []
        for n in 0..<1000 {
            let id = table.remember(dir(n))
            first.append(id)
            table.forget(id, count: 1)
        }
        #expect(table.liveCount == 1)
        #expect(table.syntheticIDCount == 101, "the held node and the 100 most recently forgotten")
        // Recently forgotten: the same id again. Long forgotten: a new one, never an old one reused.
        #expect(table.remember(dir(999)) == first[999])
        let again = table.remember(dir(0))
        #expect(again != first[0] && !first.contains(again))
        #expect(table.node(held) == dir(-1) && table.remember(dir(-1)) == held)
        // Forgetting one that was looked up again (so queued twice) drops nothing still held.
        table.forget(first[999], count: 1)
        for n in 1000..<1300 { table.forget(table.remember(dir(n)), count: 1) }
        #expect(table.node(again) == dir(0) && table.node(held) == dir(-1))
        #expect(table.syntheticIDCount <= 103)
    }

    @Test func presentObjectsKeepTheirIdsAcrossRenamesAndDetachWhenReplaced() throws {
        let tree = PresentTree()
        let dir = tree.remember("/etc")
        let file = tree.remember("/etc/hosts")
        let other = tree.remember("/etc2")
        #expect(Set([dir, file, other]).count == 3 && [dir, file, other].allSatisfy(NodeID.isPresent))
        tree.moved(from: "/etc", to: "/etc2")  // replaces /etc2
        #expect(tree.path(dir) == "/etc2" && tree.path(file) == "/etc2/hosts")
        #expect(tree.path(other) == nil && tree.contains(other))  // detached, still referenced
        #expect(tree.remember("/etc2/hosts") == file)
        tree.forget(other, count: 1)
        #expect(!tree.contains(other))
        tree.removed("/etc2/hosts")
        #expect(tree.path(file) == nil)
        #expect(tree.remember("/etc2/hosts") != file)  // a new object at that path
        // /etc2 is not "/etc" + a suffix of its own: a sibling with a common prefix never moves.
        let sibling = tree.remember("/etc22")
        tree.moved(from: "/etc2", to: "/x")
        #expect(tree.path(sibling) == "/etc22" && tree.path(dir) == "/x")
        // The object goes with its last reference, unless a file is open on it.
        let open = tree.remember("/x/open")
        _ = tree.openFile(open) { OpenFile(createdWithMode: 0o644, by: tester) }
        tree.forget(open, count: 1)
        #expect(tree.contains(open))
        tree.closeFile(open)
        #expect(!tree.contains(open))
    }

    @Test func malformedOrEarlyNamesAreNotFound() throws {
        try withSample { (ns: Namespace) throws in
            for name in ["garbage", "1970-01-01", "@0", "", "..", String(repeating: "9", count: 1000), "a\u{0}b"] {
                #expect(throws: LayerError.self, "\(name)") { try ns.lookup(.timeRoot, name) }
                do {
                    _ = try ns.lookup(.timeRoot, name)
                } catch let error as LayerError {
                    #expect(error.posixErrno == ENOENT, "\(name)")
                }
            }
            for name in ["0", "01", "2", "-1", "latest "] {
                #expect(throws: LayerError.self, "\(name)") { try ns.lookup(.blockRoot, name) }
            }
        }
    }

    @Test func historyNamesVersionsByTimeAndMarksDeletions() throws {
        try withSample { (ns: Namespace) throws in
            let store = ns.store
            let a = try ns.lookup(.historyRoot, "a.txt")
            #expect(a == .historyVersions(path: "/a.txt"))
            #expect(try ns.list(a).map(\.name) == [try store.time(ofSequence: 4).canonical, try store.time(ofSequence: 7).canonical + ".deleted"])
            #expect(try ns.lookup(.historyRoot, "etc") == .historyDirectory(path: "/etc"))
        }
    }
}
