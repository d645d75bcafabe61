import Foundation
import PropertyBased
import Testing

@testable import LayerCore

/// Random histories over a small namespace, committed to a real store and compared, at every
/// sequence number, with a naive model that replays the accepted changes from scratch into a
/// dictionary. The model shares no code with StateIndex: it is the obvious meaning of each change.
@Suite struct ReconstructionPropertyTests {
    // MARK: The naive model

    struct ModelNode: Equatable {
        var kind: NodeKind
        var content: [UInt8] = []
        var target: String = ""
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var mtime: Timestamp
        /// The event that produced this version; a rename moves the version unchanged.
        var version: UInt64

        var size: UInt64 {
            switch kind {
            case .file: UInt64(content.count)
            case .symlink: UInt64(target.utf8.count)
            case .directory: 0
            }
        }
    }

    enum Outcome: Equatable {
        case applied, noop
        /// Any of these codes is a right answer (POSIX leaves the order of checks open).
        case rejected(Set<LayerError.Code>)
    }

    struct Model {
        var nodes: [String: ModelNode]

        init(genesis: Event) {
            nodes = [
                "/": ModelNode(
                    kind: .directory, mode: 0o755, uid: genesis.provenance.uid, gid: genesis.provenance.gid,
                    mtime: genesis.time, version: 0)
            ]
        }

        static func parent(_ path: String) -> String {
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
            return String(path[..<slash])
        }

        func isNonDirectory(_ path: String) -> Bool { nodes[path].map { $0.kind != .directory } ?? false }

        /// Why a new entry cannot be made at `path` (nil: its parent is a directory).
        func parentProblem(_ path: String) -> Set<LayerError.Code>? {
            let parent = Model.parent(path)
            if let node = nodes[parent] { return node.kind == .directory ? nil : [.notDirectory] }
            return lookupProblem(parent)
        }

        /// The error for a path that does not exist: ENOENT, or ENOTDIR when an ancestor is not
        /// a directory (POSIX; a store that does not walk paths may say ENOENT, also accepted).
        func lookupProblem(_ path: String) -> Set<LayerError.Code> {
            var ancestor = Model.parent(path)
            while ancestor != "/" {
                if isNonDirectory(ancestor) { return [.notDirectory, .notFound] }
                ancestor = Model.parent(ancestor)
            }
            return [.notFound]
        }

        func hasChildren(_ path: String) -> Bool { nodes.keys.contains { $0.hasPrefix(path + "/") } }

        func children(_ path: String) -> [String] {
            let prefix = path == "/" ? "/" : path + "/"
            return nodes.keys.filter { $0 != "/" && $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
                .map { String($0.dropFirst(prefix.count)) }
                .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }

        /// Applies `change` as event `seq` at `time` by `who`, or says why it is a no-op or refused.
        mutating func apply(_ change: Change, seq: UInt64, time: Timestamp, by who: Provenance) -> Outcome {
            var change = change
            if case .writeStaged(let path, let staged, let mode) = change, let bytes = try? staged.readAll() {
                change = .write(path: path, content: bytes, mode: mode)  // the same change, content in a file
            }
            switch change {
            case .writeStaged:
                return .rejected([.io])  // unreadable staging file (the generator never makes one)
            case .write(let path, let content, let mode):
                if let node = nodes[path] {
                    if node.kind == .directory { return .rejected([.isDirectory]) }
                    if node.kind == .symlink { return .rejected([.invalidArgument]) }
                    let newMode = (mode ?? node.mode) & 0o7777
                    if node.content == content && node.mode == newMode { return .noop }
                    nodes[path] = ModelNode(
                        kind: .file, content: content, mode: newMode, uid: node.uid, gid: node.gid, mtime: time, version: seq)
                } else {
                    if let problem = parentProblem(path) { return .rejected(problem) }
                    nodes[path] = ModelNode(
                        kind: .file, content: content, mode: (mode ?? 0o644) & 0o7777, uid: who.uid, gid: who.gid, mtime: time,
                        version: seq)
                }
            case .truncate(let path, let size):
                guard var node = nodes[path] else { return .rejected(lookupProblem(path)) }
                if node.kind == .directory { return .rejected([.isDirectory]) }
                if node.kind == .symlink { return .rejected([.invalidArgument]) }
                if node.content.count == Int(size) { return .noop }
                node.content =
                    node.content.count > Int(size)
                    ? Array(node.content.prefix(Int(size))) : node.content + [UInt8](repeating: 0, count: Int(size) - node.content.count)
                node.mtime = time
                node.version = seq
                nodes[path] = node
            case .mkdir(let path, let mode):
                if nodes[path] != nil { return .rejected([.alreadyExists]) }
                if let problem = parentProblem(path) { return .rejected(problem) }
                nodes[path] = ModelNode(kind: .directory, mode: mode & 0o7777, uid: who.uid, gid: who.gid, mtime: time, version: seq)
            case .rmdir(let path):
                guard let node = nodes[path] else { return .rejected(lookupProblem(path)) }
                if node.kind != .directory { return .rejected([.notDirectory]) }
                if hasChildren(path) { return .rejected([.directoryNotEmpty, .alreadyExists]) }
                nodes[path] = nil
            case .unlink(let path):
                guard let node = nodes[path] else { return .rejected(lookupProblem(path)) }
                if node.kind == .directory { return .rejected([.isDirectory, .permission]) }
                nodes[path] = nil
            case .rename(let from, let to):
                guard let source = nodes[from] else { return .rejected(lookupProblem(from)) }
                var problems: Set<LayerError.Code> = []
                // POSIX makes renaming a file onto itself a successful no-op; Linux never passes
                // that to a filesystem, and the store refuses it (EINVAL).
                if from == to { problems.insert(.invalidArgument) }
                if source.kind == .directory && to.hasPrefix(from + "/") { problems.insert(.invalidArgument) }
                if let problem = parentProblem(to) {
                    problems.formUnion(problem)
                } else if from != to, let target = nodes[to] {
                    if source.kind == .directory {
                        if target.kind != .directory { problems.insert(.notDirectory) }
                        else if hasChildren(to) { problems.formUnion([.directoryNotEmpty, .alreadyExists]) }
                    } else if target.kind == .directory {
                        problems.insert(.isDirectory)
                    }
                }
                if !problems.isEmpty { return .rejected(problems) }
                nodes[to] = nil
                for path in nodes.keys where path == from || path.hasPrefix(from + "/") {
                    let node = nodes.removeValue(forKey: path)!
                    nodes[to + path.dropFirst(from.count)] = node
                }
            case .symlink(let path, let target):
                if nodes[path] != nil { return .rejected([.alreadyExists]) }
                if let problem = parentProblem(path) { return .rejected(problem) }
                nodes[path] = ModelNode(kind: .symlink, target: target, mode: 0o777, uid: who.uid, gid: who.gid, mtime: time, version: seq)
            case .chmod(let path, let mode):
                guard var node = nodes[path] else { return .rejected(lookupProblem(path)) }
                if node.kind == .symlink { return .rejected([.unsupported]) }
                if node.mode == mode & 0o7777 { return .noop }
                node.mode = mode & 0o7777
                node.version = seq
                nodes[path] = node
            case .chown(let path, let owner, let group):
                var problems: Set<LayerError.Code> = []
                if owner == nil && group == nil { problems.insert(.invalidArgument) }
                if nodes[path] == nil { problems.formUnion(lookupProblem(path)) }
                if !problems.isEmpty { return .rejected(problems) }
                var node = nodes[path]!
                if (owner ?? node.uid) == node.uid && (group ?? node.gid) == node.gid { return .noop }
                node.uid = owner ?? node.uid
                node.gid = group ?? node.gid
                node.version = seq
                nodes[path] = node
            case .setModificationTime(let path, let mtime):
                var problems: Set<LayerError.Code> = []
                if mtime < Timestamp.minimum || mtime > Timestamp.maximum { problems.insert(.invalidArgument) }
                if nodes[path] == nil { problems.formUnion(lookupProblem(path)) }
                if !problems.isEmpty { return .rejected(problems) }
                var node = nodes[path]!
                if node.mtime == mtime { return .noop }
                node.mtime = mtime
                node.version = seq
                nodes[path] = node
            }
            return .applied
        }
    }

    /// One accepted change, as committed.
    struct Accepted {
        var seq: UInt64
        var change: Change
        var who: Provenance
        var time: Timestamp
    }

    /// The model at `seq`: genesis, then accepted changes 1...seq replayed from scratch.
    static func model(at seq: UInt64, genesis: Event, history: [Accepted]) -> Model {
        var model = Model(genesis: genesis)
        for accepted in history where accepted.seq <= seq {
            let outcome = model.apply(accepted.change, seq: accepted.seq, time: accepted.time, by: accepted.who)
            precondition(outcome == .applied, "replaying an accepted change must apply it")
        }
        return model
    }

    // MARK: Generating histories

    static let namespace = ["/a", "/b", "/c", "/a/a", "/a/b", "/b/a", "/b/c", "/a/b/c", "/a/a/b"]
    static let alice = Provenance(uid: 1000, gid: 1000, pid: 101, process: "alice-editor")
    static let bob = Provenance(uid: 2000, gid: 3000, pid: 202, process: "bob")

    struct Step: Sendable, CustomStringConvertible {
        var op: Int, p: Int, q: Int, arg: Int
        var description: String { "(\(op),\(p),\(q),\(arg))" }
    }

    static let stepGenerator = zip(Gen.int(in: 0...99), Gen.int(in: 0...8), Gen.int(in: 0...8), Gen.int(in: 0...999))
        .map { t in Step(op: t.0, p: t.1, q: t.2, arg: t.3) }

    static func content(_ a: Int) -> [UInt8] {
        switch a % 10 {
        case 0: return []
        case 1: return Array("x".utf8)
        case 2: return Array("hello\n".utf8)
        case 3: return Array("hello, world\n".utf8)
        case 4: return Array("héllo ✓ 日本\n".utf8)
        case 5: return Array("line1\nline2\n".utf8)
        case 6: return Array("q\"b\\s\tt\u{1}\u{7f}".utf8)
        case 7: return [0, 1, 2, 255]
        case 8: return [0xff, 0xfe]
        default: return Array("x".utf8) + [UInt8(a % 256)]
        }
    }

    static func large(_ a: Int) -> [UInt8] {
        a % 2 == 0
            ? (0..<(65_537 + a)).map { UInt8(ascii: "a") + UInt8(($0 + a) % 26) }  // text, > 64 KiB
            : (0..<(70_000 + a)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ a) }  // binary
    }

    static let times: [Timestamp] = [
        Timestamp(nanoseconds: 0), Timestamp(nanoseconds: 978_307_200_123_456_789), .minimum, .maximum,
        Timestamp(nanoseconds: .min), Timestamp(nanoseconds: -1), Timestamp(nanoseconds: Timestamp.maximum.nanoseconds + 1),
    ]

    /// Turns a step into a change. Paths come from the fixed namespace, or (most of the time)
    /// from what exists in the model right now, so that most changes apply and directories
    /// with contents get renamed, replaced and removed.
    static func change(_ s: Step, _ model: Model) -> (Change, Provenance) {
        let names = ["a", "b", "c"]
        let existing = model.nodes.keys.filter { $0 != "/" }.sorted()
        let directories = model.nodes.filter { $0.value.kind == .directory && $0.key.split(separator: "/").count < 3 }.keys.sorted()
        /// An existing path (2 times in 3) or one of the namespace.
        func old(_ i: Int, _ salt: Int) -> String {
            (s.arg / salt) % 3 != 0 && !existing.isEmpty ? existing[i % existing.count] : namespace[i % namespace.count]
        }
        /// A name in an existing directory (2 times in 3) or a path of the namespace.
        func new(_ i: Int, _ salt: Int) -> String {
            guard (s.arg / salt) % 3 != 0 else { return namespace[i % namespace.count] }
            let parent = directories[i % directories.count]
            return (parent == "/" ? "" : parent) + "/" + names[(i / directories.count + s.arg) % names.count]
        }
        let a = s.arg
        let who = a % 3 == 0 ? bob : alice
        let change: Change
        switch s.op {
        case 0..<14: change = .mkdir(path: new(s.p, 7), mode: [0o755, 0o700, 0o2775][a % 3])
        case 14..<34:
            change = .write(
                path: a % 2 == 0 ? new(s.p, 7) : old(s.p, 7), content: content(a),
                mode: a % 4 == 0 ? [0o600, 0o644, 0o755, 0o104755][(a / 4) % 4] : nil)
        case 34..<40: change = .truncate(path: old(s.p, 7), size: [0, 1, 3, 17][a % 4])
        case 40..<48: change = .unlink(path: old(s.p, 7))
        case 48..<55: change = .rmdir(path: old(s.p, 7))
        case 55..<68: change = .rename(from: old(s.p, 7), to: a % 5 == 0 ? old(s.q, 11) : new(s.q, 11))
        case 68..<74: change = .symlink(path: new(s.p, 7), target: ["a", "../b/c", "/etc/hosts", "x y ✓"][a % 4])
        case 74..<81: change = .chmod(path: old(s.p, 7), mode: [0o644, 0o600, 0o755, 0o1777, 0o100640][a % 5])
        case 81..<88: change = .chown(path: old(s.p, 7), owner: [nil, 0, 1000, 2000][a % 4], group: [nil, 0, 3000][(a / 4) % 3])
        case 88..<96: change = .setModificationTime(path: old(s.p, 7), mtime: times[a % times.count])
        default: change = .write(path: a % 2 == 0 ? new(s.p, 7) : old(s.p, 7), content: large(a))
        }
        return (change, who)
    }

    // MARK: Running a history

    struct Observation: Equatable {
        var info: NodeInfo
        var bytes: [UInt8]
    }

    /// Commits `changes`, checking each outcome against the model; then compares every state
    /// 0...head with the model, reopens the store from disk and compares again.
    static func run(_ changes: [(Change, Provenance)], sourceLocation: SourceLocation = #_sourceLocation) throws {
        try run(changes.map { fixed in { _ in fixed } }, sourceLocation: sourceLocation)
    }

    static func run(_ steps: [Step], sourceLocation: SourceLocation = #_sourceLocation) throws {
        try run(steps.map { step in { model in change(step, model) } }, sourceLocation: sourceLocation)
    }

    /// Each element picks the next change from the model of the present state.
    static func run(_ changes: [(Model) -> (Change, Provenance)], sourceLocation: SourceLocation = #_sourceLocation) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            let genesis = try store.event(0)
            var history: [Accepted] = []
            var current = Model(genesis: genesis)
            for (index, pick) in changes.enumerated() {
                let (change, who) = pick(current)
                let head = store.headSequence
                var predicted = current
                let expected = predicted.apply(change, seq: head + 1, time: .now(), by: who)
                let result: Result<UInt64?, LayerError> = Result { () throws(LayerError) in try store.commit(change, by: who) }
                let context = "step \(index): \(change) by \(who.process)"
                switch (expected, result) {
                case (.applied, .success(let seq?)):
                    #expect(seq == head + 1, "\(context)", sourceLocation: sourceLocation)
                    let event = try store.event(seq)
                    #expect(try store.time(ofSequence: seq) == event.time)
                    #expect(event.provenance == who, "\(context)", sourceLocation: sourceLocation)
                    let accepted = Accepted(seq: seq, change: change, who: who, time: event.time)
                    #expect(current.apply(change, seq: seq, time: event.time, by: who) == .applied)
                    history.append(accepted)
                case (.noop, .success(nil)):
                    #expect(store.headSequence == head)
                case (.rejected(let codes), .failure(let error)):
                    #expect(codes.contains(error.code), "\(context): the store said \(error), POSIX says one of \(codes)", sourceLocation: sourceLocation)
                    #expect(store.headSequence == head, "a refused change wrote nothing")
                default:
                    Issue.record("\(context): the model expected \(expected), the store gave \(result)", sourceLocation: sourceLocation)
                    try store.close()
                    return
                }
            }

            let head = store.headSequence
            #expect(head == UInt64(history.count))
            let observed = try compareAll(store, genesis: genesis, history: history, sourceLocation: sourceLocation)
            try checkVersionIdentity(observed, sourceLocation: sourceLocation)
            try checkSequenceAtTime(store, sourceLocation: sourceLocation)
            try store.close()

            // The index built by reading the log must answer exactly like the one built by commits.
            let reopened = try Store.open(path, mode: .readOnly)
            #expect(reopened.headSequence == head)
            #expect(reopened.openNotes.isEmpty, "\(reopened.openNotes)")
            let again = try compareAll(reopened, genesis: genesis, history: history, sourceLocation: sourceLocation)
            #expect(again == observed, "reopened store answers differently", sourceLocation: sourceLocation)
            if again != observed {
                for key in Set(again.keys).union(observed.keys) where again[key] != observed[key] {
                    Issue.record("\(key): commits built \(String(describing: observed[key]?.info)), the log \(String(describing: again[key]?.info))", sourceLocation: sourceLocation)
                    break
                }
            }
        }
    }

    /// Compares stat, list, read and readLink at every sequence number with the model; returns
    /// what the store said, keyed "seq path".
    static func compareAll(
        _ store: Store, genesis: Event, history: [Accepted], sourceLocation: SourceLocation
    ) throws -> [String: Observation] {
        var observed: [String: Observation] = [:]
        let head = store.headSequence
        for seq in 0...head {
            let model = Self.model(at: seq, genesis: genesis, history: history)
            let paths = Set(namespace + model.nodes.keys + ["/"])
            for path in paths.sorted() {
                let context = "\(path) at event \(seq)"
                let expected = model.nodes[path]
                let info: NodeInfo
                do {
                    info = try store.stat(path, at: seq)
                } catch {
                    #expect(expected == nil, "\(context): the store says \(error), the model has \(String(describing: expected))", sourceLocation: sourceLocation)
                    #expect(error.code == .notFound, "\(context): \(error)", sourceLocation: sourceLocation)
                    continue
                }
                guard let expected else {
                    Issue.record("\(context): the store has \(info), the model nothing", sourceLocation: sourceLocation)
                    continue
                }
                #expect(info.kind == expected.kind, "\(context)", sourceLocation: sourceLocation)
                #expect(info.mode == expected.mode, "\(context): mode \(String(info.mode, radix: 8)) vs \(String(expected.mode, radix: 8))", sourceLocation: sourceLocation)
                #expect(info.uid == expected.uid && info.gid == expected.gid, "\(context): owner", sourceLocation: sourceLocation)
                #expect(info.mtime == expected.mtime, "\(context): mtime \(info.mtime) vs \(expected.mtime)", sourceLocation: sourceLocation)
                #expect(info.size == expected.size, "\(context): size", sourceLocation: sourceLocation)
                #expect(info.version == expected.version, "\(context): version \(info.version) vs \(expected.version)", sourceLocation: sourceLocation)
                var bytes: [UInt8] = []
                switch info.kind {
                case .file:
                    bytes = try store.read(info)
                    #expect(bytes == expected.content, "\(context): content", sourceLocation: sourceLocation)
                    #expect(throws: LayerError.self) { try store.readLink(info) }
                case .symlink:
                    let target = try store.readLink(info)
                    bytes = Array(target.utf8)
                    #expect(target == expected.target, "\(context): target", sourceLocation: sourceLocation)
                case .directory:
                    let entries = try store.list(path, at: seq)
                    #expect(entries.map(\.name) == model.children(path), "\(context): entries", sourceLocation: sourceLocation)
                    for entry in entries {
                        let child = (path == "/" ? "/" : path + "/") + entry.name
                        #expect(try entry.info == store.stat(child, at: seq), "\(context): entry \(entry.name)", sourceLocation: sourceLocation)
                    }
                    #expect(throws: LayerError.self) { try store.read(info) }
                }
                if info.kind != .directory {
                    let error = try #require(throws: LayerError.self) { try store.list(path, at: seq) }
                    #expect(error.code == .notDirectory, "\(context): \(error)", sourceLocation: sourceLocation)
                }
                observed["\(seq) \(path)"] = Observation(info: info, bytes: bytes)
            }
        }
        // Each path's history: exactly the events that changed what it names.
        var everyPath = Set(namespace)
        for seq in 0...head { everyPath.formUnion(Self.model(at: seq, genesis: genesis, history: history).nodes.keys) }
        for path in everyPath.sorted() {
            var expected: [(UInt64, UInt64?)] = []
            var previous: UInt64?
            for seq in 0...head {
                let version = Self.model(at: seq, genesis: genesis, history: history).nodes[path]?.version
                if version != previous { expected.append((seq, version)) }
                previous = version
            }
            let actual = try store.history(path).map { ($0.seq, $0.info?.version) }
            #expect(actual.map(\.0) == expected.map(\.0) && actual.map(\.1) == expected.map(\.1),
                "history of \(path): \(actual) vs \(expected)", sourceLocation: sourceLocation)
        }
        return observed
    }

    /// One version, one identity: wherever (at any event, under any name) a version number is
    /// shown, the node behind it is the same in every attribute and byte.
    static func checkVersionIdentity(_ observed: [String: Observation], sourceLocation: SourceLocation) throws {
        var byVersion: [UInt64: (String, Observation)] = [:]
        for (key, observation) in observed.sorted(by: { $0.key < $1.key }) {
            if let (firstKey, first) = byVersion[observation.info.version] {
                #expect(first == observation, "version \(observation.info.version) is \(first) at \(firstKey) but \(observation) at \(key)", sourceLocation: sourceLocation)
            } else {
                byVersion[observation.info.version] = (key, observation)
            }
        }
    }

    /// sequence(at:) agrees with a linear scan of the event times.
    static func checkSequenceAtTime(_ store: Store, sourceLocation: SourceLocation) throws {
        let head = store.headSequence
        let times = try (0...head).map { try store.event($0).time }
        for i in 1..<times.count { #expect(times[i - 1] <= times[i], "event times never go backwards", sourceLocation: sourceLocation) }
        func linear(_ t: Timestamp) -> UInt64? { times.lastIndex { $0 <= t }.map(UInt64.init) }
        var probes = [Timestamp.minimum, .maximum, Timestamp(nanoseconds: 0)]
        for t in times { probes += [t, Timestamp(nanoseconds: t.nanoseconds - 1), Timestamp(nanoseconds: t.nanoseconds + 1)] }
        for t in probes {
            if let expected = linear(t) {
                #expect(try store.sequence(at: t) == expected, "sequence(at: \(t))", sourceLocation: sourceLocation)
            } else {
                let error = try #require(throws: LayerError.self) { try store.sequence(at: t) }
                #expect(error.code == .outOfRange, sourceLocation: sourceLocation)
            }
        }
    }

    // MARK: Tests

    @Test func randomHistoriesMatchTheNaiveModel() async {
        await propertyCheck(count: 60, input: Self.stepGenerator.array(of: 1...60)) { steps in
            try Self.run(steps)
        }
    }

    /// Histories made mostly of directory work, so that renames of whole trees are frequent.
    @Test func randomDirectoryHeavyHistoriesMatchTheNaiveModel() async {
        let directoryHeavy = zip(Gen.int(in: 0...99), Gen.int(in: 0...8), Gen.int(in: 0...8), Gen.int(in: 0...999))
            .map { t in Step(op: [0, 20, 56, 60, 48, 14, 68, 74][t.0 % 8] + (t.0 % 3), p: t.1, q: t.2, arg: t.3) }
        await propertyCheck(count: 40, input: directoryHeavy.array(of: 20...80)) { steps in
            try Self.run(steps)
        }
    }

    /// Out-of-range modification times are refused, and can be printed (in messages, logs,
    /// test output) without trapping: Timestamp.description used to overflow in floorMod for the
    /// last partial second before Int64.min.
    @Test func extremeTimestampsArePrintableAndRefused() throws {
        #expect(Timestamp(nanoseconds: .min).description == "1677-09-21T00:12:43.145224192Z")
        #expect(Timestamp(nanoseconds: .max).description == "2262-04-11T23:47:16.854775807Z")
        #expect(Timestamp(nanoseconds: -1).description == "1969-12-31T23:59:59.999999999Z")
        #expect(Timestamp(nanoseconds: .min).subsecondNanoseconds == 145_224_192)
        try withTemporaryDirectory { dir in
            try Store.create(at: dir + "/s", by: tester)
            let store = try Store.open(dir + "/s", options: .init(sealPolicy: .manual))
            try store.put("/f", "f")
            for t in [Timestamp(nanoseconds: .min), Timestamp(nanoseconds: Timestamp.minimum.nanoseconds - 1), Timestamp(nanoseconds: Timestamp.maximum.nanoseconds + 1)] {
                let error = try #require(throws: LayerError.self) { try store.commit(.setModificationTime(path: "/f", mtime: t), by: tester) }
                #expect(error.code == .invalidArgument, "\(t): \(error)")
            }
            #expect(try store.commit(.setModificationTime(path: "/f", mtime: .minimum), by: tester) == 2)
            #expect(try store.commit(.setModificationTime(path: "/f", mtime: .maximum), by: tester) == 3)
            try store.close()
            #expect(try Store.open(dir + "/s", mode: .readOnly).stat("/f").mtime == .maximum)
        }
    }

    /// A fixed history that goes through every case worth naming at least once.
    @Test func handPickedHistory() throws {
        let t2001 = Self.times[1]
        try Self.run([
            (.mkdir(path: "/a"), Self.alice),
            (.mkdir(path: "/a/b", mode: 0o700), Self.bob),
            (.write(path: "/a/b/c", content: Array("one\n".utf8)), Self.alice),
            (.write(path: "/a/a", content: Self.large(0)), Self.bob),
            (.symlink(path: "/a/a/b", target: "x"), Self.alice),  // parent is a file: ENOTDIR
            (.symlink(path: "/b", target: "a/b/c"), Self.alice),
            (.rename(from: "/a", to: "/c"), Self.alice),  // a directory with contents
            (.rename(from: "/c", to: "/c/b/x"), Self.alice),  // into itself: EINVAL
            (.rmdir(path: "/c"), Self.alice),  // not empty
            (.chmod(path: "/c/b/c", mode: 0o600), Self.bob),
            (.chmod(path: "/c/b/c", mode: 0o600), Self.bob),  // no-op
            (.chmod(path: "/b", mode: 0o600), Self.bob),  // symlink: unsupported
            (.chown(path: "/c/b", owner: 0, group: nil), Self.bob),
            (.chown(path: "/c/b", owner: nil, group: nil), Self.bob),  // EINVAL
            (.setModificationTime(path: "/c/a", mtime: t2001), Self.alice),
            (.setModificationTime(path: "/c/a", mtime: t2001), Self.alice),  // no-op
            (.setModificationTime(path: "/c/a", mtime: Timestamp(nanoseconds: .min)), Self.alice),  // out of range
            (.truncate(path: "/c/b/c", size: 2), Self.alice),
            (.truncate(path: "/c/b/c", size: 2), Self.alice),  // no-op
            (.truncate(path: "/c/b", size: 0), Self.alice),  // EISDIR
            (.write(path: "/c/b/c", content: Array("on".utf8)), Self.alice),  // same content: no-op
            (.write(path: "/c/b/c", content: Array("on".utf8), mode: 0o644), Self.alice),  // mode only
            (.mkdir(path: "/a"), Self.alice),
            (.rename(from: "/c/b", to: "/a"), Self.alice),  // over an empty directory
            (.rename(from: "/c/a", to: "/a/c"), Self.bob),  // a file over a file
            (.rename(from: "/a/c", to: "/c"), Self.bob),  // a file over a (now empty) directory: EISDIR
            (.rename(from: "/c", to: "/b"), Self.bob),  // a directory over a symlink: ENOTDIR
            (.rename(from: "/b", to: "/c/b"), Self.bob),  // a symlink into a directory
            (.unlink(path: "/c"), Self.bob),  // EISDIR
            (.unlink(path: "/c/b"), Self.bob),
            (.rmdir(path: "/c"), Self.bob),
            (.write(path: "/c/a", content: [1]), Self.bob),  // parent gone: ENOENT
            (.mkdir(path: "/c"), Self.bob),
            (.rename(from: "/a", to: "/c/b"), Self.alice),  // directory into a directory
            (.rename(from: "/c/b", to: "/c/b"), Self.alice),  // onto itself
            (.unlink(path: "/c/b/c/x"), Self.alice),  // under a file
        ])
    }
}
