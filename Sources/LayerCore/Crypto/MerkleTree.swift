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

extension MerkleTree {
    /// The leaf hash of one event hash: SHA-256(0x00 || d).
    public static func leafHash(_ leaf: Digest) -> Digest { SHA256.hash([0x00] + leaf.bytes) }

    /// The interior node hash: SHA-256(0x01 || left || right).
    static func nodeHash(_ left: Digest, _ right: Digest) -> Digest { SHA256.hash([0x01] + left.bytes + right.bytes) }

    /// The audit path of leaf `index` (RFC 6962 §2.1.1, PATH(m, D[n])): the sibling subtree
    /// hashes from the leaf up to the root, nearest first.
    public static func auditPath(_ leaves: ArraySlice<Digest>, index: Int) -> [Digest] {
        precondition(leaves.indices.contains(leaves.startIndex + index), "leaf index out of range")
        guard leaves.count > 1 else { return [] }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let split = leaves.startIndex + k
        if index < k {
            return auditPath(leaves[leaves.startIndex..<split], index: index) + [root(leaves[split...])]
        }
        return auditPath(leaves[split...], index: index - k) + [root(leaves[leaves.startIndex..<split])]
    }

    /// The root that an audit path leads to from `leaf` at `index` in a tree of `size` leaves, or
    /// nil when the path cannot belong to such a tree (too short, too long, index out of range).
    /// RFC 9162 §2.1.3.2.
    public static func root(fromAuditPath path: [Digest], leaf: Digest, index: UInt64, size: UInt64) -> Digest? {
        guard index < size else { return nil }
        var fn = index, sn = size - 1
        var r = leafHash(leaf)
        for p in path {
            guard sn != 0 else { return nil }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 ? r : nil
    }
}
