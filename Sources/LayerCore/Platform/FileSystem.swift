#if canImport(Glibc)
import Glibc
#endif

/// The system calls LayerCore makes, each retrying EINTR where that is safe (never `close`), each
/// failing with a LayerError that names the call and the path.
enum FileSystem {
    static func retrying<T: BinaryInteger>(_ body: () -> T) -> (T, Int32) {
        while true {
            let r = body()
            if r >= 0 { return (r, 0) }
            let e = errno
            if e != EINTR { return (r, e) }
        }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(LayerError) -> Int32 {
        let (fd, e) = retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw .system("open", errno: e, path: path) }
        return fd
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)  // never retried: the fd is gone either way on Linux
    }

    /// Writes all of `bytes` at the current offset (O_APPEND files: at the end).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(LayerError) {
        var done = 0
        while done < bytes.count {
            let (n, e) = retrying { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
            guard n >= 0 else { throw .system("write", errno: e, path: path) }
            done += n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(LayerError) {
        let failure: Int32 = bytes.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let (n, e) = retrying { Glibc.write(fd, b.baseAddress! + done, b.count - done) }
                if n < 0 { return e }
                done += n
            }
            return 0
        }
        if failure != 0 { throw .system("write", errno: failure, path: path) }
    }

    static func preadAll(_ fd: Int32, count: Int, offset: UInt64, path: String) throws(LayerError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        var failure: Int32 = 0
        out.withUnsafeMutableBytes { buffer in
            while done < count {
                let (n, e) = retrying { Glibc.pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                if n < 0 { failure = e; return }
                if n == 0 { failure = EIO; return }  // file shorter than expected
                done += n
            }
        }
        if failure != 0 { throw .system("pread", errno: failure, path: path) }
        return out
    }

    static func dataSync(_ fd: Int32, path: String) throws(LayerError) {
        let (r, e) = retrying { fdatasync(fd) }
        guard r == 0 else { throw .system("fdatasync", errno: e, path: path) }
    }

    static func sync(_ fd: Int32, path: String) throws(LayerError) {
        let (r, e) = retrying { fsync(fd) }
        guard r == 0 else { throw .system("fsync", errno: e, path: path) }
    }

    /// fsync of a directory, so that entries created or renamed in it are durable.
    static func syncDirectory(_ path: String) throws(LayerError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try sync(fd, path: path)
    }

    static func truncate(_ fd: Int32, to length: UInt64, path: String) throws(LayerError) {
        let (r, e) = retrying { ftruncate(fd, off_t(length)) }
        guard r == 0 else { throw .system("ftruncate", errno: e, path: path) }
    }

    static func size(_ fd: Int32, path: String) throws(LayerError) -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system("fstat", errno: errno, path: path) }
        return UInt64(st.st_size)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(LayerError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw .system("mkdir", errno: errno, path: path) }
    }

    static func rename(_ from: String, _ to: String) throws(LayerError) {
        guard Glibc.rename(from, to) == 0 else { throw .system("rename", errno: errno, path: "\(from) -> \(to)") }
    }

    /// The first `count` bytes of a file (fewer if it is shorter); works on character devices.
    static func readPrefix(_ path: String, count: Int) throws(LayerError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { b in retrying { Glibc.read(fd, b.baseAddress, count) } }
        guard n.0 >= 0 else { throw .system("read", errno: n.1, path: path) }
        return Array(out.prefix(n.0))
    }

    static func readFile(_ path: String) throws(LayerError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let length = try size(fd, path: path)
        return length == 0 ? [] : try preadAll(fd, count: Int(length), offset: 0, path: path)
    }

    /// Writes a file by temp file + rename. With `durable`, the data and the rename are fsynced.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], durable: Bool, mode: mode_t = 0o644) throws(LayerError) {
        let temporary = path + ".tmp-\(getpid())"
        let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do {
            try writeAll(fd, bytes, path: temporary)
            if durable { try sync(fd, path: temporary) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        do { try rename(temporary, path) } catch { unlink(temporary); throw error }
        if durable { try syncDirectory(StorePath.parent(ofFilesystemPath: path)) }
    }

    /// Entries of a real directory (not `.`/`..`), unsorted.
    static func listDirectory(_ path: String) throws(LayerError) -> [String] {
        guard let dir = opendir(path) else { throw .system("opendir", errno: errno, path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

extension StorePath {
    /// The directory part of a real filesystem path ("." for a bare name).
    static func parent(ofFilesystemPath path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
