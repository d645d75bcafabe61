/// The Merkle tree hash of a list of event hashes, as in RFC 6962 §2.1 (Certificate Transparency),
/// so that issue-5 inclusion proofs follow the well-known audit-path algorithm:
///
///     MTH({})      = SHA-256()                                  (the empty list)
///     MTH({d0})    = SHA-256(0x00 || d0)                        (leaf: the 32 raw bytes of an event hash)
///     MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) for n > 1,
///                    k the largest power of two smaller than n.
public enum MerkleTree {
    public static func root(_ leaves: ArraySlice<Digest>) -> Digest {
        switch leaves.count {
        case 0:
            return SHA256.hash([UInt8]())
        case 1:
            return SHA256.hash([0x00] + leaves[leaves.startIndex].bytes)
        default:
            var k = 1
            while k * 2 < leaves.count { k *= 2 }
            let split = leaves.startIndex + k
            let left = root(leaves[leaves.startIndex..<split])
            let right = root(leaves[split...])
            return SHA256.hash([0x01] + left.bytes + right.bytes)
        }
    }

    public static func root(_ leaves: [Digest]) -> Digest { root(leaves[...]) }
}
