/// The built-in embedder: no model files, the default, tuned for configuration files.
///
/// A text becomes a set of weighted features, each hashed (stable FNV-1a, then a 64-bit mix) to one
/// of `dimension` components with a sign taken from the hash (signed feature hashing: collisions
/// add zero-mean noise instead of a bias). The vector is then L2-normalized.
///
/// Tokens. The UTF-8 bytes are split into runs of letters and digits (bytes ≥ 0x80 count as
/// letters); everything else (`=`, `:`, `_`, `-`, `.`, `/`, `[`, spaces...) separates. A run is split
/// again at case and digit boundaries (`ListenAddress` → `listen`, `address`; `enp3s0` → `enp`, `3`,
/// `s`, `0`; `HTTPServer` → `http`, `server`; `IPv6` → `ipv`, `6`), and the whole run is also kept as a
/// compound token (`listenaddress`, `enp3s0`). Runs longer than 32 bytes (keys, hashes, base64) are
/// one opaque token: not split, no n-grams, half weight. Lowercasing is ASCII only.
///
/// Features of a token, with `tf = √count` (sublinear) for each distinct token:
/// - its word: a light English stemmer (plural -s/-es/-ies, -ing, -ed, a final -e), so `bridges`,
///   `bridged`, `bridging` and `bridge` are one word; weight `w·tf`;
/// - its concept, when the stem is in the built-in table of configuration synonyms and
///   abbreviations (`br` → bridge, `iface` → interface, `gw` → gateway, `nameserver` → dns,
///   `sshd` → ssh, `ssl` → tls, `nginx` → web...): weight `w·tf`;
/// - its character 3-, 4- and 5-grams, with `<` and `>` marking the word's ends (fastText style),
///   so `br0`'s `br` shares `<br` with `bridge`, and `interfaces` shares most n-grams with
///   `interface`; together weighted `w·tf` (each n-gram `w·tf/√m` for m n-grams). Words only:
///   not numbers, not compounds, not low-weight tokens;
/// - adjacent word pairs on one line (`root login`, `bridge ports`), weight `0.5·√count`, between
///   ordinary words only.
///
/// `w` is a fixed IDF-like weight: 1 for ordinary words, 0.7 for compounds, 0.5 for numbers of two or
/// more digits and opaque tokens, 0.3 for values and words every config file has (`yes`, `no`,
/// `true`, `auto`, `default`, `etc`, `conf`, `config`...), 0.25 for single characters, 0.1 for
/// English function and question words (`the`, `which`, `are`, `how`...).
///
/// Determinism: no Swift `Hasher` (randomized per process), features are summed in order of first
/// occurrence (floating-point sums do not depend on dictionary order), and the only non-trivial
/// float operation is the square root, which IEEE 754 rounds exactly: the same bytes give the same
/// bits on every machine. Any change to the tokens, the tables or the weights changes `version`.
///
/// Text with no letters or digits at all embeds to the zero vector. Cost is linear in the text.
public struct BuiltinEmbedder: Embedder {
    /// Bumped by any change that changes vectors (tokenizer, stemmer, tables, weights, hashing).
    public static let version = 1
    public static let defaultDimension = 512

    public let dimension: Int

    /// `builtin-ngram-v<version>-d<dimension>`, e.g. `builtin-ngram-v1-d512`.
    public var id: String { "builtin-ngram-v\(Self.version)-d\(dimension)" }

    public init(dimension: Int = BuiltinEmbedder.defaultDimension) {
        precondition(dimension >= 2 && dimension <= 1 << 20, "BuiltinEmbedder: dimension \(dimension) out of range 2...1048576")
        self.dimension = dimension
    }

    public func embed(_ text: String) -> [Float] {
        var text = text
        return text.withUTF8 { embed(utf8: $0) }
    }

    /// The embedding of UTF-8 bytes (file content need not be valid UTF-8).
    public func embed(utf8 bytes: UnsafeBufferPointer<UInt8>) -> [Float] {
        var features = FeatureExtractor()
        features.scan(bytes)
        var vector = [Float](repeating: 0, count: dimension)
        vector.withUnsafeMutableBufferPointer { features.project(into: $0) }
        var sumOfSquares: Double = 0
        for x in vector { sumOfSquares += Double(x) * Double(x) }
        guard sumOfSquares > 0 else { return vector }
        let scale = Float(1 / sumOfSquares.squareRoot())
        for i in vector.indices { vector[i] *= scale }
        return vector
    }

    public func embed(batch texts: [String]) -> [[Float]] {
        texts.map { embed($0) }
    }
}

// MARK: - Hashing

private let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
private let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

@inline(__always) private func fnv(_ h: UInt64, _ byte: UInt8) -> UInt64 {
    (h ^ UInt64(byte)) &* fnvPrime
}

/// MurmurHash3's 64-bit finalizer: spreads FNV's weak low and high bits before bucket and sign.
@inline(__always) private func mix(_ x: UInt64) -> UInt64 {
    var k = x
    k ^= k >> 33
    k &*= 0xff51_afd7_ed55_8ccd
    k ^= k >> 33
    k &*= 0xc4ce_b9fe_1a85_ec53
    k ^= k >> 33
    return k
}

/// Feature namespaces: the first byte hashed.
private let wordSpace = fnv(fnvOffset, UInt8(ascii: "w"))
private let gramSpace = fnv(fnvOffset, UInt8(ascii: "g"))

// MARK: - Characters

private enum ByteClass: UInt8 { case separator, lower, upper, digit }

@inline(__always) private func byteClass(_ b: UInt8) -> ByteClass {
    if b &- 0x61 < 26 || b >= 0x80 { return .lower }
    if b &- 0x41 < 26 { return .upper }
    if b &- 0x30 < 10 { return .digit }
    return .separator
}

@inline(__always) private func lowercased(_ b: UInt8) -> UInt8 {
    b &- 0x41 < 26 ? b | 0x20 : b
}

// MARK: - Stemming

/// Length of the stem of lowercase `p[0..<n]`, and whether a `y` follows it (`proxies` → `proxy`).
private func stem(_ p: UnsafePointer<UInt8>, _ n: Int) -> (length: Int, y: Bool) {
    @inline(__always) func at(_ i: Int, _ c: Unicode.Scalar) -> Bool { p[i] == UInt8(ascii: c) }
    var k = n
    if n >= 5 && at(n - 3, "i") && at(n - 2, "e") && at(n - 1, "s") {
        return (n - 3, true)
    } else if n >= 5 && at(n - 4, "s") && at(n - 3, "s") && at(n - 2, "e") && at(n - 1, "s") {
        k = n - 2
    } else if n >= 4 && at(n - 1, "s") && !at(n - 2, "s") && !at(n - 2, "u") && !at(n - 2, "i") {
        k = n - 1
    } else if n >= 6 && at(n - 3, "i") && at(n - 2, "n") && at(n - 1, "g") {
        k = n - 3
    } else if n >= 5 && at(n - 2, "e") && at(n - 1, "d") {
        k = n - 2
    }
    if k >= 4 && at(k - 1, "e") { k -= 1 }
    return (k, false)
}

/// The word feature of lowercase `p[0..<n]`: the hash of its stem (letters only; numbers as they are).
private func wordHash(_ p: UnsafePointer<UInt8>, _ n: Int, stemmed: Bool) -> UInt64 {
    let (length, y) = stemmed ? stem(p, n) : (n, false)
    var h = wordSpace
    for i in 0..<length { h = fnv(h, p[i]) }
    if y { h = fnv(h, UInt8(ascii: "y")) }
    return h
}

private func wordHash(_ word: String) -> UInt64 {
    let bytes = Array(word.utf8)
    return bytes.withUnsafeBufferPointer { wordHash($0.baseAddress!, $0.count, stemmed: true) }
}

// MARK: - Built-in tables

/// Configuration synonyms and abbreviations: each variant (stemmed) adds its concept's word.
private let conceptTable: [UInt64: UInt64] = {
    let groups: [(concept: String, variants: [String])] = [
        ("bridge", ["br", "brctl", "bridging"]),
        ("interface", ["iface", "ifname", "nic", "netif"]),
        ("ethernet", ["eth", "en", "enp", "ens", "eno", "enx", "ethernets"]),
        ("wifi", ["wlan", "wlp", "wl", "wireless", "wpa"]),
        ("vlan", ["vid", "dot1q", "vlans"]),
        ("bond", ["bonding", "lacp", "team", "teaming"]),
        ("address", ["addr", "ipaddr", "addresses"]),
        ("gateway", ["gw", "router"]),
        ("dns", ["nameserver", "resolv", "resolver", "resolved", "ns"]),
        ("netmask", ["mask", "cidr"]),
        ("loopback", ["lo", "localhost"]),
        ("hostname", ["fqdn"]),
        ("firewall", ["iptables", "nftables", "nft", "ufw", "firewalld"]),
        ("nat", ["masquerade", "snat", "dnat"]),
        ("vpn", ["wireguard", "wg", "openvpn", "tun", "tunnel"]),
        ("ssh", ["sshd", "openssh"]),
        ("tls", ["ssl", "https", "openssl"]),
        ("certificate", ["cert", "crt", "x509", "pem"]),
        ("web", ["nginx", "apache", "httpd", "www", "lighttpd", "caddy"]),
        ("proxy", ["upstream"]),
        ("password", ["passwd", "nopasswd", "passphrase", "pw"]),
        ("auth", ["authentication", "authenticate", "authn", "pam"]),
        ("login", ["logon", "signin"]),
        ("allow", ["permit", "accept"]),
        ("deny", ["reject", "forbid", "drop"]),
        ("sudo", ["sudoer", "wheel"]),
        ("user", ["username", "uid"]),
        ("service", ["daemon", "svc"]),
        ("schedule", ["cron", "crontab", "anacron", "timer", "calendar"]),
        ("mount", ["fstab", "automount", "mountpoint"]),
        ("log", ["logging", "syslog", "rsyslog", "journal", "journald", "logrotate"]),
        ("ntp", ["chrony", "chronyd", "timesyncd", "ntpd"]),
        ("directory", ["dir", "folder"]),
        ("kernel", ["sysctl", "modprobe"]),
    ]
    var table: [UInt64: UInt64] = [:]
    for (concept, variants) in groups {
        let target = wordHash(concept)
        for variant in variants where wordHash(variant) != target {
            table[wordHash(variant)] = target
        }
    }
    return table
}()

/// Fixed IDF-like weights of very common words (stemmed); everything else is 1.
private let weightTable: [UInt64: Float] = {
    let filler = """
        a an the of to in at by for from with without and or not nor is are was were be been being \
        this that these those it its which what where when who whom whose how why do does did can \
        could should would will shall may might must i me my we our us you your they them their \
        there here has have had as if then than so such into onto about also just only any all \
        some each every other show find list tell give get set use using please machine machines
        """
    let common = """
        yes no true false on off auto none default null nil ok etc conf config configuration cfg \
        setting settings option options file files
        """
    var table: [UInt64: Float] = [:]
    for word in filler.split(separator: " ") { table[wordHash(String(word))] = 0.1 }
    for word in common.split(separator: " ") { table[wordHash(String(word))] = 0.3 }
    return table
}()

// MARK: - Feature extraction

private enum TokenKind: UInt64 { case word = 1, number, compound, opaque }

private let maximumSplitRun = 32
private let compoundWeight: Float = 0.7
private let opaqueWeight: Float = 0.5
private let pairWeight: Float = 0.5

/// Distinct keys in order of first occurrence, with counts (open addressing, no Swift `Hasher`).
private struct CountTable {
    private var slots = [Int32](repeating: -1, count: 256)
    private var mask = 255
    private(set) var keys: [UInt64] = []
    var counts: [Int] = []

    init() {
        keys.reserveCapacity(128)
        counts.reserveCapacity(128)
    }

    /// The entry of `key` (counted once more), and whether it is new.
    mutating func count(_ key: UInt64) -> (entry: Int, isNew: Bool) {
        var slot = Int(truncatingIfNeeded: mix(key)) & mask
        while true {
            let entry = Int(slots[slot])
            if entry < 0 { break }
            if keys[entry] == key {
                counts[entry] += 1
                return (entry, false)
            }
            slot = (slot + 1) & mask
        }
        let entry = keys.count
        keys.append(key)
        counts.append(1)
        slots[slot] = Int32(entry)
        if keys.count * 2 > slots.count { grow() }
        return (entry, true)
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for (entry, key) in keys.enumerated() {
            var slot = Int(truncatingIfNeeded: mix(key)) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(entry)
        }
    }
}

private struct FeatureExtractor {
    // Distinct tokens.
    var tokens = CountTable()
    var kinds: [TokenKind] = []
    var textStart: [Int] = []  // in `text`
    var textLength: [Int] = []
    var word: [UInt64] = []
    var concept: [UInt64] = []  // 0 when none
    var weight: [Float] = []
    var text: [UInt8] = []  // lowercase bytes of each distinct token

    // Distinct adjacent word pairs.
    var pairs = CountTable()
    var previousWord = -1  // entry of the previous word on this line, -1 when none

    mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>) {
        let n = bytes.count
        var i = 0
        while i < n {
            let b = bytes[i]
            if byteClass(b) != .separator {
                let start = i
                i += 1
                while i < n && byteClass(bytes[i]) != .separator { i += 1 }
                run(bytes, start, i)
            } else {
                if b == 0x0A { previousWord = -1 }
                i += 1
            }
        }
    }

    private mutating func run(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) {
        if end - start > maximumSplitRun {
            add(bytes, start, end, kind: .opaque)
            previousWord = -1
            return
        }
        var partStart = start
        var parts = 1
        var previous = byteClass(bytes[start])
        var j = start + 1
        while j < end {
            let current = byteClass(bytes[j])
            let boundary: Bool
            switch (previous, current) {
            case (.lower, .upper): boundary = true
            case (.digit, .lower), (.digit, .upper), (.lower, .digit), (.upper, .digit): boundary = true
            case (.upper, .upper):
                // "HTTPServer": a new word starts at the capital followed by two lowercase letters.
                boundary = j + 2 < end && byteClass(bytes[j + 1]) == .lower && byteClass(bytes[j + 2]) == .lower
            default: boundary = false
            }
            if boundary {
                part(bytes, partStart, j)
                partStart = j
                parts += 1
            }
            previous = current
            j += 1
        }
        part(bytes, partStart, end)
        if parts > 1 { add(bytes, start, end, kind: .compound) }
    }

    private mutating func part(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) {
        let isNumber = byteClass(bytes[start]) == .digit
        let entry = add(bytes, start, end, kind: isNumber ? .number : .word)
        guard !isNumber, weight[entry] >= 1 else {
            previousWord = -1
            return
        }
        if previousWord >= 0 {
            let a = concept[previousWord] != 0 ? concept[previousWord] : word[previousWord]
            let b = concept[entry] != 0 ? concept[entry] : word[entry]
            _ = pairs.count(mix(a ^ 0x7061_6972) &+ b)
        }
        previousWord = entry
    }

    @discardableResult
    private mutating func add(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, kind: TokenKind) -> Int {
        var key = fnvOffset ^ kind.rawValue
        for i in start..<end { key = fnv(key, lowercased(bytes[i])) }
        let (entry, isNew) = tokens.count(key)
        guard isNew else { return entry }

        let offset = text.count
        for i in start..<end { text.append(lowercased(bytes[i])) }
        let length = end - start
        let (wordFeature, conceptFeature, tokenWeight) = text.withUnsafeBufferPointer { buffer in
            let p = buffer.baseAddress! + offset
            let stemmed = kind != .number && kind != .opaque
            let w = wordHash(p, length, stemmed: stemmed)
            let c = stemmed ? conceptTable[w] ?? 0 : 0
            let weight: Float
            switch kind {
            case .word: weight = length == 1 ? 0.25 : weightTable[w] ?? 1
            case .number: weight = length == 1 ? 0.25 : 0.5
            case .compound: weight = compoundWeight
            case .opaque: weight = opaqueWeight
            }
            return (w, c, weight)
        }
        kinds.append(kind)
        textStart.append(offset)
        textLength.append(length)
        word.append(wordFeature)
        concept.append(conceptFeature)
        weight.append(tokenWeight)
        return entry
    }

    func project(into vector: UnsafeMutableBufferPointer<Float>) {
        let dimension = UInt64(vector.count)
        @inline(__always) func emit(_ feature: UInt64, _ value: Float) {
            let h = mix(feature)
            let index = Int(truncatingIfNeeded: h % dimension)
            vector[index] += h >> 63 == 0 ? value : -value
        }
        text.withUnsafeBufferPointer { text in
            for entry in 0..<tokens.keys.count {
                let tf = Float(tokens.counts[entry]).squareRoot()
                let value = weight[entry] * tf
                emit(word[entry], value)
                if concept[entry] != 0 { emit(concept[entry], value) }
                guard kinds[entry] == .word, weight[entry] >= 1 else { continue }

                // Character n-grams of "<word>", n = 3...5.
                let start = textStart[entry]
                let length = textLength[entry]
                let padded = length + 2
                var grams = 0
                for n in 3...5 where padded >= n { grams += padded - n + 1 }
                let gramValue = value / Float(grams).squareRoot()
                for i in 0..<padded {
                    var h = gramSpace
                    var j = i
                    while j < padded && j - i < 5 {
                        let byte = j == 0 ? UInt8(ascii: "<") : j == padded - 1 ? UInt8(ascii: ">") : text[start + j - 1]
                        h = fnv(h, byte)
                        if j - i >= 2 { emit(h, gramValue) }
                        j += 1
                    }
                }
            }
        }
        for entry in 0..<pairs.keys.count {
            emit(pairs.keys[entry], pairWeight * Float(pairs.counts[entry]).squareRoot())
        }
    }
}
