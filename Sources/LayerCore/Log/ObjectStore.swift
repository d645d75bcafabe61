#if canImport(Glibc)
import Glibc
#endif

/// Content-addressed blobs under `<store>/objects/<first 2 hex>/<other 62 hex>`, for file content
/// larger than `inlineLimit`. A blob is written and fsynced (file and directory) before the event
/// that names it is appended, so a durable event never points at a missing blob.
struct ObjectStore: Sendable {
    /// Content up to this many bytes is stored inline in the event line.
    static let inlineLimit = 65_536

    let root: String

    func path(of digest: Digest) -> String {
        let hex = digest.hex
        return "\(root)/\(hex.prefix(2))/\(hex.dropFirst(2))"
    }

    /// Stores `bytes` (idempotent) and returns its digest.
    func store(_ bytes: [UInt8]) throws(LayerError) -> Digest {
        let digest = SHA256.hash(bytes)
        let target = path(of: digest)
        if FileSystem.exists(target) { return digest }
        let directory = StorePath.parent(ofFilesystemPath: target)
        let created = !FileSystem.exists(directory)
        try FileSystem.makeDirectory(directory)
        if created { try FileSystem.syncDirectory(root) }
        try FileSystem.writeFileAtomically(target, bytes, durable: true, mode: 0o444)
        return digest
    }

    /// Reads a blob and checks its hash and size.
    func load(_ digest: Digest, size: UInt64?) throws(LayerError) -> [UInt8] {
        let target = path(of: digest)
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(target) } catch {
            throw LayerError(.corrupt, "blob \(digest.hex) is missing or unreadable: \(error.message)", path: target)
        }
        if let size, UInt64(bytes.count) != size {
            throw LayerError(.corrupt, "blob \(digest.hex) has \(bytes.count) bytes, the event says \(size)", path: target)
        }
        guard SHA256.hash(bytes) == digest else {
            throw LayerError(.corrupt, "blob \(digest.hex) does not hash to its name (edited?)", path: target)
        }
        return bytes
    }
}
