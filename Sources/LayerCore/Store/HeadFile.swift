#if canImport(Glibc)
import Glibc
#endif

/// `metadata/current_hash`: the hash and sequence number of the last durable event, as
/// `<64 hex digits> <sequence number as 20 decimal digits>\n` (86 bytes, fixed length so that it is
/// rewritten in place). The writer updates it after every group-commit sync without a sync of its
/// own (so it may lag the log after a power loss, never lead it) and syncs it on a clean close.
enum HeadFile {
    static let length = 86

    static func encode(seq: UInt64, hash: Digest) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(length)
        hash.appendHex(to: &out)
        out.append(UInt8(ascii: " "))
        let digits = Array(String(seq).utf8)
        out.append(contentsOf: [UInt8](repeating: UInt8(ascii: "0"), count: 20 - digits.count))
        out.append(contentsOf: digits)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    static func decode(_ bytes: [UInt8]) -> (seq: UInt64, hash: Digest)? {
        guard bytes.count == length, bytes[64] == UInt8(ascii: " "), bytes[85] == UInt8(ascii: "\n"),
            let hash = Digest(hex: String(decoding: bytes[0..<64], as: UTF8.self))
        else { return nil }
        var seq: UInt64 = 0
        for b in bytes[65..<85] {
            guard b >= 48, b <= 57 else { return nil }
            let (m, o1) = seq.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b - 48))
            guard !o1, !o2 else { return nil }
            seq = a
        }
        return (seq, hash)
    }
}
