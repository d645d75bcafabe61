import COpenSSL

#if canImport(Glibc)
import Glibc
#endif

/// Ed25519 (RFC 8032) signing keys for block headers, through OpenSSL's EVP interface.
///
/// Keys live in PEM files that `openssl pkey` reads too: the private key as unencrypted PKCS#8
/// (`-----BEGIN PRIVATE KEY-----`), the public key as SubjectPublicKeyInfo
/// (`-----BEGIN PUBLIC KEY-----`). A key is named by its *key id*: the SHA-256 of the 32 raw
/// public-key bytes (docs/FORMAT.md §8.7).
public enum Ed25519 {
    /// The SHA-256 of a raw public key: how signatures name the key that made them.
    public static func keyID(rawPublicKey: [UInt8]) -> Digest { SHA256.hash(rawPublicKey) }

    /// One OpenSSL key object (`EVP_PKEY`), freed with the Swift object.
    final class Key: @unchecked Sendable {
        // EVP_PKEY is reference counted and immutable once made; OpenSSL allows concurrent use
        // of one key from several threads as long as each operation has its own EVP_MD_CTX.
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { EVP_PKEY_free(pointer) }

        var rawPublicKey: [UInt8] {
            var length = 32
            var out = [UInt8](repeating: 0, count: 32)
            let ok = out.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(pointer, $0.baseAddress, &length) }
            precondition(ok == 1 && length == 32, "EVP_PKEY_get_raw_public_key failed on an Ed25519 key")
            return out
        }
    }

    /// A private key: signs.
    public struct PrivateKey: Sendable {
        let key: Key
        /// The matching public key.
        public var publicKey: PublicKey { PublicKey(key: key) }

        /// A new random key pair. The corresponding C function is `EVP_PKEY_Q_keygen`-style
        /// generation through `EVP_PKEY_keygen`.
        public static func generate() throws(LayerError) -> PrivateKey {
            guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw Ed25519.openSSLError("EVP_PKEY_CTX_new_id") }
            defer { EVP_PKEY_CTX_free(context) }
            var pkey: OpaquePointer?
            guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &pkey) == 1, let pkey else {
                throw Ed25519.openSSLError("EVP_PKEY_keygen")
            }
            return PrivateKey(key: Key(pkey))
        }

        /// Reads a PEM private key; `file` only names it in errors.
        public init(pem: [UInt8], file: String) throws(LayerError) {
            let key = try Ed25519.readPEM(pem, file: file, what: "private key") { PEM_read_bio_PrivateKey($0, nil, nil, nil) }
            self.init(key: key)
        }

        /// Reads the PEM private key in `path`.
        public init(contentsOf path: String) throws(LayerError) {
            try self.init(pem: try Ed25519.readKeyFile(path, what: "private key"), file: path)
        }

        init(key: Key) { self.key = key }

        /// The key as unencrypted PKCS#8 PEM. The corresponding C function is `PEM_write_bio_PrivateKey`.
        public var pem: [UInt8] {
            Ed25519.writePEM { PEM_write_bio_PrivateKey($0, key.pointer, nil, nil, 0, nil, nil) }
        }

        /// The 64-byte Ed25519 signature of `message`. The corresponding C function is `EVP_DigestSign`.
        public func sign(_ message: [UInt8]) throws(LayerError) -> [UInt8] {
            guard let context = EVP_MD_CTX_new() else { throw Ed25519.openSSLError("EVP_MD_CTX_new") }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestSignInit(context, nil, nil, nil, key.pointer) == 1 else { throw Ed25519.openSSLError("EVP_DigestSignInit") }
            var signature = [UInt8](repeating: 0, count: 64)
            var length = 64
            let ok = signature.withUnsafeMutableBufferPointer { s in
                message.withUnsafeBufferPointer { m in EVP_DigestSign(context, s.baseAddress, &length, m.baseAddress, m.count) }
            }
            guard ok == 1, length == 64 else { throw Ed25519.openSSLError("EVP_DigestSign") }
            return signature
        }
    }

    /// A public key: verifies.
    public struct PublicKey: Sendable {
        let key: Key
        /// The 32 raw bytes (RFC 8032 encoding).
        public let raw: [UInt8]
        /// SHA-256 of `raw`: the key id that signatures carry.
        public let id: Digest

        init(key: Key) {
            self.key = key
            self.raw = key.rawPublicKey
            self.id = Ed25519.keyID(rawPublicKey: raw)
        }

        /// Reads a PEM public key; `file` only names it in errors.
        public init(pem: [UInt8], file: String) throws(LayerError) {
            self.init(key: try Ed25519.readPEM(pem, file: file, what: "public key") { PEM_read_bio_PUBKEY($0, nil, nil, nil) })
        }

        /// Reads the PEM public key in `path`.
        public init(contentsOf path: String) throws(LayerError) {
            try self.init(pem: try Ed25519.readKeyFile(path, what: "public key"), file: path)
        }

        /// The key as SubjectPublicKeyInfo PEM. The corresponding C function is `PEM_write_bio_PUBKEY`.
        public var pem: [UInt8] { Ed25519.writePEM { PEM_write_bio_PUBKEY($0, key.pointer) } }

        /// True when `signature` is this key's valid signature of `message`.
        /// The corresponding C function is `EVP_DigestVerify`.
        public func isValidSignature(_ signature: [UInt8], of message: [UInt8]) -> Bool {
            guard signature.count == 64, let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestVerifyInit(context, nil, nil, nil, key.pointer) == 1 else { ERR_clear_error(); return false }
            let ok = signature.withUnsafeBufferPointer { s in
                message.withUnsafeBufferPointer { m in EVP_DigestVerify(context, s.baseAddress, s.count, m.baseAddress, m.count) }
            }
            ERR_clear_error()
            return ok == 1
        }
    }

    // MARK: Plumbing

    /// The oldest OpenSSL error on this thread's queue, with the call that failed; clears the queue.
    static func openSSLError(_ call: String) -> LayerError {
        let code = ERR_get_error()
        ERR_clear_error()
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let reason = code == 0 ? "unknown error" : String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return LayerError(.io, "OpenSSL \(call): \(reason)")
    }

    static func readKeyFile(_ path: String, what: String) throws(LayerError) -> [UInt8] {
        do throws(LayerError) {
            let bytes = try FileSystem.readFile(path)
            guard bytes.count <= 64 * 1024 else { throw LayerError(.invalidArgument, "\(path): too large for an Ed25519 \(what) (\(bytes.count) bytes)", path: path) }
            return bytes
        } catch {
            throw LayerError(error.code, "cannot read the \(what) \(path): \(error.message)", path: path, errno: error.errno)
        }
    }

    static func readPEM(_ pem: [UInt8], file: String, what: String, _ read: (OpaquePointer) -> OpaquePointer?) throws(LayerError) -> Key {
        let key: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return read(bio)
        }
        ERR_clear_error()
        guard let key else {
            throw LayerError(.invalidArgument, "\(file) is not a PEM \(what) (expected what `layerfs keygen` writes)", path: file)
        }
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 else {
            EVP_PKEY_free(key)
            throw LayerError(.invalidArgument, "\(file) holds a \(what) of another algorithm: layerfs signs with Ed25519", path: file)
        }
        return Key(key)
    }

    static func writePEM(_ write: (OpaquePointer) -> Int32) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { fatalError("BIO_new failed: out of memory") }
        defer { BIO_free(bio) }
        precondition(write(bio) == 1, "writing a PEM key to memory failed")
        var data: UnsafeMutablePointer<CChar>?
        let length = layerfs_bio_mem_data(bio, &data)
        guard let data, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }
}
