import COpenSSL

/// A SHA-256 digest (32 bytes). Its text form is 64 lowercase hex digits.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    // Four words instead of an array: digests are stored per block and compared often.
    var w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    /// 32 zero bytes: the `prev` of the genesis event and of the first block.
    public static let zero = Digest(w0: 0, w1: 0, w2: 0, w3: 0)

    init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        self.w0 = w0; self.w1 = w1; self.w2 = w2; self.w3 = w3
    }

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        var words = [UInt64](repeating: 0, count: 4)
        for (i, b) in bytes.enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
        }
        return out
    }

    /// Parses 64 lowercase hex digits; nil for anything else (upper case included: the form is canonical).
    public init?(hex: some StringProtocol) {
        var words: [UInt64] = [0, 0, 0, 0]
        var count = 0
        for u in hex.utf8 {
            guard count < 64 else { return nil }
            let v: UInt8
            switch u {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = u - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = u - 87
            default: return nil
            }
            words[count / 16] = words[count / 16] << 4 | UInt64(v)
            count += 1
        }
        guard count == 64 else { return nil }
        self.init(w0: words[0], w1: words[1], w2: words[2], w3: words[3])
    }

    public var hex: String {
        var out = [UInt8]()
        out.reserveCapacity(64)
        appendHex(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    func appendHex(to out: inout [UInt8]) {
        let table: StaticString = "0123456789abcdef"
        table.withUTF8Buffer { t in
            for w in [w0, w1, w2, w3] {
                for shift in stride(from: 60, through: 0, by: -4) {
                    out.append(t[Int((w >> UInt64(shift)) & 0xf)])
                }
            }
        }
    }
}

/// SHA-256 through OpenSSL's EVP interface.
/// The corresponding C functions are `EVP_Digest`, `EVP_DigestInit_ex`, `EVP_DigestUpdate`, `EVP_DigestFinal_ex`.
public enum SHA256 {
    public static func hash(_ data: UnsafeRawBufferPointer) -> Digest {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            EVP_Digest(data.baseAddress, data.count, o.baseAddress, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed")
        return Digest(bytes: out)
    }

    public static func hash(_ bytes: [UInt8]) -> Digest {
        bytes.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ string: String) -> Digest {
        var s = string
        return s.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }

    /// Incremental hashing, for blobs streamed from disk.
    public final class Hasher {
        private let context: OpaquePointer

        public init() {
            guard let ctx = EVP_MD_CTX_new(), EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1 else {
                fatalError("EVP_DigestInit_ex(SHA-256) failed")
            }
            context = ctx
        }

        deinit { EVP_MD_CTX_free(context) }

        public func update(_ data: UnsafeRawBufferPointer) {
            guard data.count > 0 else { return }
            precondition(EVP_DigestUpdate(context, data.baseAddress, data.count) == 1)
        }

        public func finalize() -> Digest {
            var out = [UInt8](repeating: 0, count: 32)
            var length: UInt32 = 0
            let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
            precondition(ok == 1 && length == 32)
            return Digest(bytes: out)
        }
    }
}
