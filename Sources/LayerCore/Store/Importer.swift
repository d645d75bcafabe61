#if canImport(Glibc)
import Glibc
#endif

/// Makes a store's present tree match a directory on disk with the fewest events
/// (`layerfs import`).
///
/// The directory is walked first (lstat, symlinks never followed) into an in-memory tree of
/// metadata, then compared with the store's tree *as of the head when the import started*, in
/// pre-order (parents before children), committing as it goes:
///
/// | on disk                    | in the store              | events                               |
/// |----------------------------|---------------------------|--------------------------------------|
/// | directory                  | missing                   | `mkdir` (with its mode)              |
/// | directory                  | directory, other mode     | `chmod`                              |
/// | file                       | missing                   | `write` (content and mode)           |
/// | file                       | file, other content       | `write` (content and mode)           |
/// | file                       | file, same content        | `chmod` if the mode differs, else none |
/// | symlink                    | missing                   | `symlink`                            |
/// | symlink                    | symlink, other target     | `unlink` + `symlink`                 |
/// | anything                   | another kind              | remove the old (deepest first), then create |
/// | missing                    | anything                  | `unlink`/`rmdir`, deepest first      |
///
/// So importing the same directory twice commits nothing the second time.
///
/// Choices:
/// - **Skipped, never guessed:** sockets, FIFOs and devices (the store holds files, directories
///   and symlinks only), names that are not valid UTF-8, reserved root names (`@...`), symlink
///   targets that are not valid UTF-8, paths longer than `StorePath.pathMax`, entries that cannot
///   be read, and the store itself when it lies inside the directory. Each is listed in
///   `ImportReport.skipped`. A skipped entry *protects* the store's node of the same path (and
///   everything below it): nothing there is changed or removed, so an unreadable directory never
///   empties the store's copy of it.
/// - **The root's own attributes are not imported**: the directory's mode (often 0700 for a temp
///   dir) describes the source, not the store's root.
/// - **Owners and modification times are not imported**: events record who committed them
///   (`Provenance`) and when; `chown`/`utimens` events would only repeat the source's metadata.
/// - **No rename detection**: a moved file is an `unlink` plus a `write`. Detecting moves needs
///   content matching across the tree and can guess wrong; the log stays obvious instead.
/// - The directory given is followed if it is itself a symlink (the user named it).
public struct Importer: Sendable {
    public let store: Store
    public let provenance: Provenance

    public init(store: Store, provenance: Provenance = .currentProcess()) {
        self.store = store
        self.provenance = provenance
    }

    /// Imports `directory`. With `dryRun`, nothing is committed and the report says what would
    /// have been. `progress` is called on the calling thread.
    public func importDirectory(
        _ directory: String, dryRun: Bool = false, progress: ((ImportProgress) -> Void)? = nil
    ) throws(LayerError) -> ImportReport {
        var st = stat()
        guard stat(directory, &st) == 0 else {
            throw LayerError.system("stat", errno: errno, path: directory)
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw LayerError(.notDirectory, "not a directory", path: directory)
        }
        var storeIdentity = stat()
        let storeKey = stat(store.path, &storeIdentity) == 0 ? FileKey(storeIdentity) : nil

        var scan = Scan(storeKey: storeKey, progress: progress)
        let root = scan.directory(at: directory, storePath: "/", key: FileKey(st))
        if case .skipped(let reason) = root.kind {
            let why = FileKey(st) == storeKey ? "the directory is the store itself" : reason
            throw LayerError(.invalidArgument, "cannot import \(directory): \(why)", store: store.path, path: directory)
        }
        var run = Run(
            store: store, provenance: provenance, dryRun: dryRun, base: store.headSequence,
            progress: progress, totals: (scan.entries, scan.bytes))
        progress?(ImportProgress(phase: .importing, entriesDone: 0, entriesTotal: scan.entries, bytesDone: 0, bytesTotal: scan.bytes))
        try run.sync(root, storePath: "/", storeEntries: try run.entries(of: "/"))
        progress?(
            ImportProgress(
                phase: .importing, entriesDone: scan.entries, entriesTotal: scan.entries, bytesDone: scan.bytes,
                bytesTotal: scan.bytes))
        return run.report
    }
}

/// What an import did (or, in a dry run, would do). Counts are of paths, not events: a file whose
/// content and mode both changed is one `changed` path and one event; a symlink retargeted is one
/// `changed` path and two events.
public struct ImportReport: Hashable, Sendable {
    /// New files, directories and symlinks.
    public var created = 0
    /// Paths whose content, mode, target or kind changed.
    public var changed = 0
    /// Paths removed from the store because they are gone from the directory (also the former
    /// descendants of a directory replaced by another kind).
    public var removed = 0
    public var unchanged = 0
    public var skipped: [ImportSkip] = []
    /// Events committed (or that would be, in a dry run).
    public var events = 0
    /// The first and last event committed, when any.
    public var firstEvent: UInt64?
    public var lastEvent: UInt64?

    public init() {}
}

/// An entry of the directory that was not imported, and why.
public struct ImportSkip: Hashable, Sendable, CustomStringConvertible {
    /// The entry's path on disk (non-UTF-8 bytes shown as `\xNN`).
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}

public struct ImportProgress: Hashable, Sendable {
    public enum Phase: Sendable { case scanning, importing }
    public var phase: Phase
    /// Entries (files, directories, symlinks, skipped entries) seen so far (scanning) or handled.
    public var entriesDone: Int
    /// Known once scanning is over (0 while scanning).
    public var entriesTotal: Int
    /// Bytes of regular files handled (0 while scanning).
    public var bytesDone: UInt64
    public var bytesTotal: UInt64

    /// Done so far, 0...1 (entries and bytes weighted together; 0 while scanning).
    public var fraction: Double {
        let weight: Double = 4096  // an entry costs about as much as 4 KiB of content
        let total = Double(entriesTotal) * weight + Double(bytesTotal)
        guard total > 0 else { return phase == .scanning ? 0 : 1 }
        return min(1, (Double(entriesDone) * weight + Double(bytesDone)) / total)
    }
}

// MARK: - The source tree

/// (st_dev, st_ino): recognizes the store's own directory inside the source.
private struct FileKey: Hashable {
    var device: UInt64
    var inode: UInt64
    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

private final class SourceNode {
    enum Kind {
        case file(size: UInt64)
        case directory(children: [SourceNode])
        case symlink(target: String)
        /// Not imported; protects the store's node of the same name.
        case skipped(reason: String)
    }

    let name: String
    /// Path on disk (for skipped entries: printable, with `\xNN` escapes).
    let diskPath: String
    let mode: UInt32
    let kind: Kind

    init(name: String, diskPath: String, mode: UInt32, kind: Kind) {
        self.name = name
        self.diskPath = diskPath
        self.mode = mode
        self.kind = kind
    }
}

private struct Scan {
    let storeKey: FileKey?
    let progress: ((ImportProgress) -> Void)?
    var entries = 0
    var bytes: UInt64 = 0

    init(storeKey: FileKey?, progress: ((ImportProgress) -> Void)?) {
        self.storeKey = storeKey
        self.progress = progress
    }

    mutating func counted(_ node: SourceNode) -> SourceNode {
        entries += 1
        if case .file(let size) = node.kind { bytes += size }
        if entries % 256 == 0 {
            progress?(ImportProgress(phase: .scanning, entriesDone: entries, entriesTotal: 0, bytesDone: 0, bytesTotal: 0))
        }
        return node
    }

    /// The children of a directory (sorted by name, byte order). Unreadable: one skipped node.
    mutating func directory(at diskPath: String, storePath: String, key: FileKey) -> SourceNode {
        let name = StorePath.name(of: storePath)
        if key == storeKey {
            return SourceNode(name: name, diskPath: diskPath, mode: 0, kind: .skipped(reason: "the store itself is not imported into itself"))
        }
        guard let dir = opendir(diskPath) else {
            return SourceNode(name: name, diskPath: diskPath, mode: 0, kind: .skipped(reason: "cannot list: \(String(cString: strerror(errno)))"))
        }
        var rawNames: [[UInt8]] = []
        while let entry = readdir(dir) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [UInt8(ascii: ".")] || bytes == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            rawNames.append(bytes)
        }
        closedir(dir)
        rawNames.sort { $0.lexicographicallyPrecedes($1) }

        var children: [SourceNode] = []
        for raw in rawNames {
            guard let childName = String(validating: raw, as: UTF8.self) else {
                children.append(counted(SourceNode(
                    name: "", diskPath: diskPath + "/" + Importer.printable(raw), mode: 0,
                    kind: .skipped(reason: "the name is not valid UTF-8"))))
                continue
            }
            children.append(counted(entry(named: childName, in: diskPath, storeDirectory: storePath)))
        }
        var st = stat()
        let mode = lstat(diskPath, &st) == 0 ? UInt32(st.st_mode) & 0o7777 : 0o755
        return SourceNode(name: name, diskPath: diskPath, mode: mode, kind: .directory(children: children))
    }

    mutating func entry(named name: String, in diskDirectory: String, storeDirectory: String) -> SourceNode {
        let diskPath = diskDirectory + "/" + name
        let storePath = StorePath.join(storeDirectory, name)
        func skip(_ reason: String) -> SourceNode {
            SourceNode(name: name, diskPath: diskPath, mode: 0, kind: .skipped(reason: reason))
        }
        do throws(LayerError) {
            try StorePath.checkName(name, path: storePath)
        } catch {
            return skip(error.message)
        }
        if StorePath.isReserved(storePath) {
            return skip("names starting with '@' at the root are reserved for the mount's views")
        }
        if storePath.utf8.count > StorePath.pathMax {
            return skip("the path is longer than \(StorePath.pathMax) bytes")
        }
        var st = stat()
        guard lstat(diskPath, &st) == 0 else { return skip("cannot stat: \(String(cString: strerror(errno)))") }
        let mode = UInt32(st.st_mode) & 0o7777
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return SourceNode(name: name, diskPath: diskPath, mode: mode, kind: .file(size: UInt64(st.st_size)))
        case S_IFDIR:
            return directory(at: diskPath, storePath: storePath, key: FileKey(st))
        case S_IFLNK:
            var buffer = [UInt8](repeating: 0, count: StorePath.pathMax + 2)
            let n = buffer.withUnsafeMutableBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink(diskPath, $0, b.count) }
            }
            guard n >= 0 else { return skip("cannot read the link: \(String(cString: strerror(errno)))") }
            guard n > 0, n <= StorePath.pathMax else { return skip("the link target is longer than \(StorePath.pathMax) bytes") }
            guard let target = String(validating: buffer[0..<n], as: UTF8.self) else {
                return skip("the link target is not valid UTF-8")
            }
            return SourceNode(name: name, diskPath: diskPath, mode: 0o777, kind: .symlink(target: target))
        case S_IFIFO: return skip("a FIFO (named pipe): the store holds files, directories and symlinks only")
        case S_IFSOCK: return skip("a socket: the store holds files, directories and symlinks only")
        case S_IFCHR: return skip("a character device: the store holds files, directories and symlinks only")
        case S_IFBLK: return skip("a block device: the store holds files, directories and symlinks only")
        default: return skip("an unknown kind of file")
        }
    }
}

// MARK: - Comparing and committing

private struct Run {
    let store: Store
    let provenance: Provenance
    let dryRun: Bool
    /// Every comparison is against the store as of this event, so a dry run and a real run take
    /// the same decisions (a real run has already changed the head when it looks further).
    let base: UInt64
    let progress: ((ImportProgress) -> Void)?
    let totals: (entries: Int, bytes: UInt64)
    var report = ImportReport()
    var entriesDone = 0
    var bytesDone: UInt64 = 0
    var lastReported = 0

    init(
        store: Store, provenance: Provenance, dryRun: Bool, base: UInt64,
        progress: ((ImportProgress) -> Void)?, totals: (entries: Int, bytes: UInt64)
    ) {
        self.store = store
        self.provenance = provenance
        self.dryRun = dryRun
        self.base = base
        self.progress = progress
        self.totals = totals
    }

    func entries(of storePath: String) throws(LayerError) -> [String: NodeInfo] {
        var out: [String: NodeInfo] = [:]
        for entry in try store.list(storePath, at: base) { out[entry.name] = entry.info }
        return out
    }

    mutating func commit(_ change: Change) throws(LayerError) {
        if dryRun {
            report.events += 1
            return
        }
        guard let seq = try store.commit(change, by: provenance) else { return }
        report.events += 1
        if report.firstEvent == nil { report.firstEvent = seq }
        report.lastEvent = seq
    }

    mutating func handled(_ node: SourceNode) {
        entriesDone += 1
        if case .file(let size) = node.kind { bytesDone += size }
        guard let progress else { return }
        // Files report every time (they can be large); other entries every 64.
        if case .file = node.kind {} else if entriesDone - lastReported < 64 { return }
        lastReported = entriesDone
        progress(
            ImportProgress(
                phase: .importing, entriesDone: entriesDone, entriesTotal: totals.entries, bytesDone: bytesDone,
                bytesTotal: totals.bytes))
    }

    /// Makes the store directory `storePath` match `source`'s children. `storeEntries` are the
    /// store's entries there at `base` (empty when the directory is new).
    mutating func sync(_ source: SourceNode, storePath: String, storeEntries: [String: NodeInfo]) throws(LayerError) {
        guard case .directory(let children) = source.kind else { return }
        var seen = Set<String>()
        for child in children {
            defer { handled(child) }
            if case .skipped(let reason) = child.kind {
                report.skipped.append(ImportSkip(path: child.diskPath, reason: reason))
                if !child.name.isEmpty { seen.insert(child.name) }
                continue
            }
            seen.insert(child.name)
            let path = StorePath.join(storePath, child.name)
            try syncEntry(child, path: path, existing: storeEntries[child.name])
        }
        // Gone from the directory: removed, deepest first. Sorted for a stable log.
        for name in storeEntries.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) where !seen.contains(name) {
            try remove(StorePath.join(storePath, name), storeEntries[name]!, countingTop: true)
        }
    }

    mutating func syncEntry(_ child: SourceNode, path: String, existing: NodeInfo?) throws(LayerError) {
        switch child.kind {
        case .skipped:
            return
        case .directory:
            if let existing, existing.kind == .directory {
                if existing.mode != child.mode {
                    try commit(.chmod(path: path, mode: child.mode))
                    report.changed += 1
                } else {
                    report.unchanged += 1
                }
                try sync(child, storePath: path, storeEntries: try entries(of: path))
                return
            }
            try replace(existing, at: path)
            try commit(.mkdir(path: path, mode: child.mode))
            try sync(child, storePath: path, storeEntries: [:])
        case .file(let size):
            if let existing, existing.kind == .file {
                // Same size: compare content (changed content with an equal size is common).
                var content: [UInt8]?
                var same = false
                if existing.size == size {
                    guard let bytes = readSource(child) else { return }
                    content = bytes
                    same = bytes == (try store.read(existing))
                }
                if same {
                    if existing.mode != child.mode {
                        try commit(.chmod(path: path, mode: child.mode))
                        report.changed += 1
                    } else {
                        report.unchanged += 1
                    }
                    return
                }
                guard let bytes = content ?? readSource(child) else { return }
                try commit(.write(path: path, content: bytes, mode: child.mode))
                report.changed += 1
                return
            }
            guard let bytes = readSource(child) else { return }
            try replace(existing, at: path)
            try commit(.write(path: path, content: bytes, mode: child.mode))
        case .symlink(let target):
            if let existing, existing.kind == .symlink {
                if try store.readLink(existing) == target {
                    report.unchanged += 1
                    return
                }
                try commit(.unlink(path: path))
                try commit(.symlink(path: path, target: target))
                report.changed += 1
                return
            }
            try replace(existing, at: path)
            try commit(.symlink(path: path, target: target))
        }
    }

    /// Before creating at `path`: removes what the store has there (another kind of node).
    mutating func replace(_ existing: NodeInfo?, at path: String) throws(LayerError) {
        if let existing {
            try remove(path, existing, countingTop: false)
            report.changed += 1
        } else {
            report.created += 1
        }
    }

    /// Removes `path` and, for a directory, everything below it first (deepest first).
    mutating func remove(_ path: String, _ info: NodeInfo, countingTop: Bool) throws(LayerError) {
        if info.kind == .directory {
            let children = try store.list(path, at: base)
            for child in children {
                try remove(StorePath.join(path, child.name), child.info, countingTop: true)
            }
            try commit(.rmdir(path: path))
        } else {
            try commit(.unlink(path: path))
        }
        if countingTop { report.removed += 1 }
    }

    /// The file's content, or nil (recorded as skipped) when it cannot be read now.
    mutating func readSource(_ node: SourceNode) -> [UInt8]? {
        switch Importer.readFile(node.diskPath) {
        case .success(let bytes): return bytes
        case .failure(let failure):
            report.skipped.append(ImportSkip(path: node.diskPath, reason: failure.reason))
            return nil
        }
    }
}

extension Importer {
    /// Reads a whole regular file without following a symlink put in its place.
    static func readFile(_ path: String) -> Result<[UInt8], ImportFailure> {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return .failure(ImportFailure("cannot open: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            return .failure(ImportFailure("no longer a regular file"))
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { b in read(fd, b.baseAddress, b.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ImportFailure("cannot read: \(String(cString: strerror(errno)))"))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return .success(out)
    }

    /// Bytes as text for messages: valid UTF-8 runs kept, other bytes and control characters as `\xNN`.
    static func printable(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < bytes.count {
            // Longest valid UTF-8 scalar starting here (1 to 4 bytes).
            var taken = false
            for length in 1...4 where i + length <= bytes.count {
                if let s = String(validating: bytes[i..<(i + length)], as: UTF8.self), s.unicodeScalars.count == 1 {
                    let scalar = s.unicodeScalars.first!
                    if scalar.value < 0x20 || scalar.value == 0x7f {
                        out += "\\x" + hex(bytes[i])
                    } else {
                        out += s
                    }
                    i += length
                    taken = true
                    break
                }
            }
            if !taken {
                out += "\\x" + hex(bytes[i])
                i += 1
            }
        }
        return out
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
    }
}

struct ImportFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
