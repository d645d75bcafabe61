import Foundation
import LayerCore
import LayerIndex
import Synchronization

/// `/@similar/`: a query directory per name, served by the similarity index (LayerIndex).
///
/// ```
/// /@similar/.status                       the index: embedder, state, versions, how far behind
/// /@similar/<query>/                      the k best matches (k = 10), best first, as symlinks
/// /@similar/<query>#<k>/                  the same with k matches (1...1000)
/// /@similar/<query>/+<more>/              a query longer than NAME_MAX, continued (joined as is)
/// /@similar/<query>/NN <path> <time>      -> ../@history/<path>/<time>: `cat` gives that version
/// ```
///
/// Names: `%XX` is a percent-escaped byte (`%2F` for '/', `%23` for '#', `%25` for '%',
/// `%2E` for a leading '.'); in entry names the path's '/' is shown as '∕' (U+2215). Names
/// starting with '.' are reserved. Nothing but `.status` is listed: queries resolve by name.
/// While the index is being built, or cannot be used, a query directory fails with EAGAIN and
/// `.status` says why; the rest of the mount works as always.
final class SimilarView: Sendable {
    let index: SimilarityIndex?
    /// Results of recent queries (ls -l looks each entry up: one search, not one per entry).
    private let cache = Mutex<[String: (Date, [Entry])]>([:])

    struct Entry: Sendable {
        var name: String
        var target: String
        var seq: UInt64
    }

    init(index: SimilarityIndex?) { self.index = index }

    /// The query and k a directory name asks for; nil for a name that is not a query.
    static func parse(_ name: String, continuing previous: String? = nil) -> (query: String, k: Int)? {
        var text = name
        if previous != nil {
            guard text.hasPrefix("+") else { return nil }
            text.removeFirst()
        } else if text.hasPrefix(".") || text.isEmpty {
            return nil
        }
        var k = 10
        if let hash = text.lastIndex(of: "#") {
            let digits = text[text.index(after: hash)...]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let value = Int(digits), (1...1000).contains(value)
            else { return nil }
            k = value
            text = String(text[..<hash])
        }
        guard let decoded = percentDecode(text) else { return nil }
        let query = (previous ?? "") + decoded
        guard !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        return (query, k)
    }

    /// `%XX` escapes decoded; nil for a malformed escape or bytes that are not UTF-8.
    static func percentDecode(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%") {
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The matches of a query directory, as entries (cached for 2 s).
    func entries(query: String, k: Int, depth: Int, namespace: Namespace) throws -> [Entry] {
        guard let index else { throw SimilarityError(.unavailable, "this mount has no similarity index") }
        let key = "\(k)\u{0}\(depth)\u{0}\(query)"
        if let (when, cached) = cache.withLock({ $0[key] }), Date().timeIntervalSince(when) < 2 { return cached }
        let matches = try index.query(query, k: k)
        var out: [Entry] = []
        let up = String(repeating: "../", count: depth + 1)
        for (rank, match) in matches.enumerated() {
            // Shown where the version went: a version written to a temp file and renamed over the
            // element (sed -i, editors) is listed under the element's name.
            var found: (path: String, name: String)? = nil
            for path in Self.pathsOfVersion(match.path, seq: match.seq, store: namespace.store).reversed() {
                if let version = try? namespace.versionEntries(path).first(where: { entry in
                    if case .version(let info) = entry.node { return info.version == match.seq }
                    return false
                }) {
                    found = (path, version.name)
                    break
                }
            }
            guard let (path, versionName) = found else { continue }
            let shown = path.dropFirst().replacingOccurrences(of: "/", with: "\u{2215}")
            let name = String(format: "%02d ", rank + 1) + shown + " " + versionName
            out.append(Entry(name: name, target: up + "@history" + path + "/" + versionName, seq: match.seq))
        }
        cache.withLock { c in
            if c.count > 256 { c.removeAll() }
            c[key] = (Date(), out)
        }
        return out
    }

    /// The paths a version had: where it was written, then where renames took it (of the file, or
    /// of a directory above it), at most 16 moves.
    static func pathsOfVersion(_ path: String, seq: UInt64, store: Store) -> [String] {
        var paths = [path]
        var current = path
        var after = seq
        for _ in 0..<16 {
            guard let changes = try? store.history(current),
                let gone = changes.first(where: { $0.seq > after && $0.info == nil }),
                let event = try? store.event(gone.seq), event.operation == .rename,
                let from = event.path, let to = event.destination,
                StorePath.isSelfOrDescendant(current, of: from)
            else { break }
            current = to + current.dropFirst(from.count)
            after = gone.seq
            paths.append(current)
        }
        return paths
    }

    /// The text of `/@similar/.status`.
    func statusText() -> String {
        guard let index else { return "state      disabled (mounted with noindex)\n" }
        let s = index.status
        let state: String =
            switch s.state {
            case .loading: "loading"
            case .ready: "ready"
            case .building(let reason): "building (\(reason))"
            case .failed(let reason): "unavailable: \(reason)"
            }
        return """
            embedder   \(s.embedder) (dimension \(s.dimension))
            state      \(state)
            versions   \(s.versions)
            indexed    through event \(s.lastIndexed) of \(s.head) (\(s.behind) behind)
            directory  \(index.directory)

            """
    }
}
