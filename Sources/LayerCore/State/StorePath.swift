/// Paths inside a store: absolute, `/`-separated, UTF-8, no empty, `.` or `..` components.
/// `/` is the root. Names at the root that start with `@` are reserved for the mount's views.
public enum StorePath {
    public static let nameMax = 255
    public static let pathMax = 4095

    /// Makes a user-typed path canonical: a leading `/` is added, repeated and trailing slashes
    /// are dropped. `.` and `..` components, NUL bytes and over-long names are rejected.
    public static func normalize(_ raw: String) throws(LayerError) -> String {
        if isAlreadyCanonical(raw) { return raw }
        var components: [Substring] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: true) {
            try checkName(component, path: raw)
            components.append(component)
        }
        let path = "/" + components.joined(separator: "/")
        guard path.utf8.count <= pathMax else {
            throw LayerError(.nameTooLong, "path is longer than \(pathMax) bytes", path: String(raw.prefix(64)) + "…")
        }
        return path
    }

    /// One pass over the bytes, no allocation: true when `normalize` would return the path as is.
    /// The common case on every commit and every lookup.
    static func isAlreadyCanonical(_ path: String) -> Bool {
        let bytes = path.utf8
        guard bytes.count <= pathMax, bytes.first == UInt8(ascii: "/") else { return false }
        if bytes.count == 1 { return true }
        var componentLength = 0
        var componentStart = true
        var dots = 0
        for b in bytes.dropFirst() {
            if b == UInt8(ascii: "/") {
                if componentLength == 0 || (componentLength == dots && dots <= 2) { return false }
                componentLength = 0
                dots = 0
                componentStart = true
                continue
            }
            if b == 0 { return false }
            componentLength += 1
            if componentLength > nameMax { return false }
            if b == UInt8(ascii: ".") && (componentStart || dots == componentLength - 1) { dots += 1 }
            componentStart = false
        }
        return componentLength > 0 && !(componentLength == dots && dots <= 2)
    }

    /// Checks one path component (a directory entry name).
    public static func checkName(_ name: some StringProtocol, path: String) throws(LayerError) {
        if name.isEmpty || name == "." || name == ".." {
            throw LayerError(.invalidPath, "'\(name)' is not allowed as a path component", path: path)
        }
        if name.utf8.contains(0) || name.utf8.contains(UInt8(ascii: "/")) {
            throw LayerError(.invalidPath, "a name may not contain NUL or '/'", path: path)
        }
        if name.utf8.count > nameMax {
            throw LayerError(.nameTooLong, "a name is longer than \(nameMax) bytes", path: path)
        }
    }

    /// Whether a canonical path is already in canonical form (what the log must hold).
    public static func isCanonical(_ path: String) -> Bool {
        guard let normalized = try? normalize(path) else { return false }
        return normalized == path
    }

    /// True for `/@...`: root entries starting with `@` belong to the mount's views.
    public static func isReserved(_ path: String) -> Bool {
        path.utf8.count > 1 && path.utf8.dropFirst().first == UInt8(ascii: "@")
    }

    /// The parent of a canonical path (`/` for root entries and for `/` itself).
    public static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")), slash != path.utf8.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a canonical path ("" for `/`).
    public static func name(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    public static func join(_ directory: String, _ name: String) -> String {
        directory == "/" ? "/" + name : directory + "/" + name
    }

    /// Whether `path` is `ancestor` or lies below it.
    public static func isSelfOrDescendant(_ path: String, of ancestor: String) -> Bool {
        if ancestor == "/" { return true }
        return path == ancestor || path.hasPrefix(ancestor + "/")
    }
}
