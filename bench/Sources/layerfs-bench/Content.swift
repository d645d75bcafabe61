// Config-like file content, made fast: a header naming the element and revision, then lines
// drawn from a fixed pool, cut to the wanted length and ended with a newline.

struct ConfigText {
    private var pool: [[UInt8]] = []

    init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let keys = [
            "enabled", "listen", "port", "workers", "timeout_ms", "retries", "log_level", "user",
            "group", "restart", "memory_max", "cpu_quota", "environment", "after", "wants", "mtu",
            "address", "gateway", "dns", "route", "backlog", "keepalive", "max_connections", "cache_dir",
        ]
        let values = [
            "true", "false", "0.0.0.0", "127.0.0.1", "info", "debug", "warn", "on-failure", "always",
            "512M", "2G", "80%", "network-online.target", "/var/cache/svc", "10.0.0.1/24", "1500",
            "9000", "\"PATH=/usr/bin:/bin\"", "nobody", "svc", "fe80::1", "8.8.8.8",
        ]
        for _ in 0..<512 {
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            let value: String =
                rng.next() % 3 == 0
                ? String(rng.next() % 65536) : values[Int(rng.next() % UInt64(values.count))]
            pool.append(Array("\(key) = \(value)\n".utf8))
        }
    }

    /// Text of exactly `length` bytes (at least 40) for element `name` at revision `revision`.
    func make(name: String, revision: UInt64, length: Int, rng: inout SplitMix64) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(length + 64)
        out.append(contentsOf: "# ".utf8)
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: " rev ".utf8)
        appendDecimal(revision, to: &out)
        out.append(contentsOf: "\n[main]\n".utf8)
        while out.count < length {
            out.append(contentsOf: pool[Int(rng.next() & 511)])
        }
        out.removeLast(out.count - length)
        out[length - 1] = UInt8(ascii: "\n")
        return out
    }
}

func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
    if value == 0 {
        out.append(UInt8(ascii: "0"))
        return
    }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var n = 0
    var v = value
    withUnsafeMutableBytes(of: &digits) { d in
        while v > 0 {
            d[n] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
            n += 1
        }
        for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
    }
}

/// `value` as exactly `width` decimal digits (zero-padded).
func padded(_ value: Int, _ width: Int) -> String {
    let s = String(value)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
