import Foundation
import Testing

@testable import LayerIndex

/// The model directory for the tests: $LAYERFS_MODEL_DIR, else /var/lib/layerfs/models/all-MiniLM-L6-v2.
let miniLMModelDirectory = MiniLMEmbedder.locateModel()
let miniLMAbsent =
    "all-MiniLM-L6-v2 model files absent (looked in $LAYERFS_MODEL_DIR and \(MiniLMEmbedder.defaultDirectory)): "
    + "run scripts/install-model.sh to run this test"

/// Loaded once for all the tests that need it.
let miniLM: Result<MiniLMEmbedder, any Error>? = miniLMModelDirectory.map { dir in
    Result { try MiniLMEmbedder(modelDirectory: dir) }
}

private func cosine(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
}

@Suite struct MiniLMEmbedderTests {
    @Test(.enabled(if: miniLM != nil, Comment(rawValue: miniLMAbsent)))
    func reproducesSentenceTransformersReference() throws {
        let model = try #require(miniLM).get()
        #expect(model.id == "all-MiniLM-L6-v2")
        #expect(model.dimension == 384)
        let v = try ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."].map {
            try model.embed($0)
        }
        for e in v {
            #expect(e.count == 384)
            #expect(abs(cosine(e, e) - 1) < 1e-5)
        }
        let s12 = cosine(v[0], v[1])
        let s13 = cosine(v[0], v[2])
        let s23 = cosine(v[1], v[2])
        print(String(format: "MiniLM reference similarities: 1-2 %.6f  1-3 %.6f  2-3 %.6f", s12, s13, s23))
        #expect(abs(s12 - 0.6660) <= 0.001, "1–2: \(s12), reference 0.6660")
        #expect(abs(s13 - 0.1046) <= 0.001, "1–3: \(s13), reference 0.1046")
        #expect(abs(s23 - 0.1411) <= 0.001, "2–3: \(s23), reference 0.1411")
    }

    /// A question about bridges finds the bridge configs first, among other config files, through
    /// a real similarity index (path + content, as the mount indexes them).
    @Test(.enabled(if: miniLM != nil, Comment(rawValue: miniLMAbsent)))
    func aQuestionAboutBridgesFindsTheBridgeConfigsFirst() throws {
        let model = try #require(miniLM).get()
        let corpus: [(String, String)] = [
            ("/etc/network/interfaces.d/br0", "auto br0\niface br0 inet static\n    address 10.0.0.1/24\n    bridge_ports eth1 eth2\n    bridge_stp off\n"),
            ("/etc/netplan/01-br0.yaml", "network:\n  version: 2\n  bridges:\n    br0:\n      interfaces: [enp3s0]\n      dhcp4: true\n"),
            ("/etc/systemd/network/10-br1.netdev", "[NetDev]\nName=br1\nKind=bridge\n"),
            ("/etc/network/interfaces.d/eth0", "auto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n"),
            ("/etc/ssh/sshd_config", "PermitRootLogin no\nPasswordAuthentication no\nPort 22\n"),
            ("/etc/resolv.conf", "nameserver 192.0.2.53\nsearch lab.example\n"),
            ("/etc/hosts", "127.0.0.1 localhost\n10.0.0.2 edge-2.lab edge-2\n"),
            ("/etc/nginx/sites-available/default", "server {\n  listen 80;\n  root /var/www/html;\n}\n"),
            ("/etc/systemd/system/backup.timer", "[Timer]\nOnCalendar=daily\nPersistent=true\n"),
            ("/etc/fstab", "UUID=1234 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"),
        ]
        let index = try HNSWIndex(dimension: model.dimension, capacity: 16)
        for (label, (path, text)) in corpus.enumerated() {
            try index.add(try model.embed(IndexedText.make(path: path, content: Array(text.utf8))), label: UInt64(label))
        }
        let hits = try index.search(try model.embed("which interfaces are network bridges?"), k: 3)
        let top = hits.map { corpus[Int($0.label)].0 }
        print("MiniLM: which interfaces are network bridges? -> \(top)")
        #expect(Set(top) == ["/etc/network/interfaces.d/br0", "/etc/netplan/01-br0.yaml", "/etc/systemd/network/10-br1.netdev"], "\(top)")
        let ssh = try index.search(try model.embed("can root log in over ssh?"), k: 1)
        #expect(corpus[Int(ssh[0].label)].0 == "/etc/ssh/sshd_config")
    }

    @Test(.enabled(if: miniLM != nil, Comment(rawValue: miniLMAbsent)))
    func batchMatchesOneAtATime() throws {
        let model = try #require(miniLM).get()
        let texts = [
            "bridge_ports eth0 eth1", "", "A much longer sentence about network interfaces and bridges.",
            "iface br0 inet static", String(repeating: "word ", count: 400),
        ]
        let together = try model.embed(batch: texts)
        for (text, vector) in zip(texts, together) {
            let alone = try model.embed(text)
            #expect(zip(alone, vector).allSatisfy { abs($0 - $1) < 1e-4 }, "\(text.prefix(40))")
        }
        // The empty text is [CLS] [SEP], as in sentence-transformers: a unit vector, not zero.
        #expect(abs(cosine(together[1], together[1]) - 1) < 1e-5)
    }

    /// Prints sentences/s (short sentences and 256-token texts); checks nothing but that it runs.
    @Test(.enabled(if: miniLM != nil, Comment(rawValue: miniLMAbsent)))
    func speed() throws {
        let model = try #require(miniLM).get()
        let short = (0..<32).map { "Sentence number \($0): the quick brown fox jumps over the lazy dog." }
        let long = (0..<8).map { i in (0..<300).map { "word\(($0 * 7 + i) % 50)" }.joined(separator: " ") }
        let clock = ContinuousClock()
        func rate(_ n: Int, _ d: Duration) -> String {
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            return String(format: "%.1f", Double(n) / seconds)
        }
        let tokens = model.tokenizer.encode(short[0]).count
        let single = try clock.measure { for s in short { _ = try model.embed(s) } }
        let batched = try clock.measure { _ = try model.embed(batch: short) }
        let longSingle = try clock.measure { for s in long { _ = try model.embed(s) } }
        print(
            "MiniLM speed: \(rate(short.count, single)) sentences/s one at a time, \(rate(short.count, batched)) "
                + "batched (\(tokens) tokens each); \(rate(long.count, longSingle)) texts/s at 256 tokens")
    }

    @Test func missingModelFilesSayHowToInstall() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("minilm-empty-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let error = #expect(throws: MiniLMError.self) { try MiniLMEmbedder(modelDirectory: dir) }
        #expect(error == .modelFilesMissing(directory: dir, missing: ["model.safetensors", "vocab.txt"]))
        #expect(error?.description.contains("scripts/install-model.sh") == true)
        #expect(error?.description.contains("scripts/install-model.sh") == true)
    }

    @Test func locateModelPrefersTheEnvironment() throws {
        #expect(
            MiniLMEmbedder.locateModel(environment: ["LAYERFS_MODEL_DIR": "/nonexistent"])
                == MiniLMEmbedder.locateModel(environment: [:]))
        if let dir = miniLMModelDirectory {
            #expect(MiniLMEmbedder.locateModel(environment: ["LAYERFS_MODEL_DIR": dir]) == dir)
        }
    }
}

@Suite struct MiniLMTokenizerTests {
    static let tokenizer: WordPieceTokenizer? = miniLMModelDirectory.flatMap {
        try? WordPieceTokenizer(vocabularyFile: $0 + "/vocab.txt")
    }

    /// Expected pieces: the output of the model's reference tokenizer (Hugging Face `tokenizers`,
    /// from the package's tokenizer.json), [CLS]/[SEP] left off.
    static let cases: [(String, [String])] = [
        ("The weather is lovely today.", ["the", "weather", "is", "lovely", "today", "."]),
        ("It's so sunny outside!", ["it", "'", "s", "so", "sunny", "outside", "!"]),
        ("Café déjà vu, naïve résumé", ["cafe", "de", "##ja", "vu", ",", "naive", "resume"]),
        ("eth0.conf", ["et", "##h", "##0", ".", "con", "##f"]),
        ("", []),
        ("   ", []),
        ("Hello,world!!(x)", ["hello", ",", "world", "!", "!", "(", "x", ")"]),
        ("ĀČĒ Ñandú Ünïcödé", ["ace", "nan", "##du", "unicode"]),
        ("İstanbul ŞIK", ["istanbul", "si", "##k"]),
        (
            "supercalifragilisticexpialidocious",
            ["super", "##cal", "##if", "##rag", "##ilis", "##tic", "##ex", "##pia", "##lid", "##oc", "##ious"]
        ),
        ("xqzvjk", ["x", "##q", "##z", "##v", "##jk"]),
        (String(repeating: "a", count: 101), ["[UNK]"]),
        ("北京欢迎你 tokyo東京", ["北", "京", "[UNK]", "[UNK]", "[UNK]", "tokyo", "東", "京"]),
        ("こんにちは", ["こ", "##ん", "##に", "##ち", "##は"]),
        ("tab\there\nnew\u{0C}line\u{85}x\u{2028}y", ["tab", "here", "new", "##line", "##x", "y"]),
        ("zero\u{200B}width soft\u{AD}hyphen", ["zero", "##wi", "##dt", "##h", "soft", "##hy", "##ph", "##en"]),
        ("emoji 🙂 ok", ["em", "##oj", "##i", "[UNK]", "ok"]),
        ("[CLS] [SEP] [UNK]", ["[CLS]", "[SEP]", "[UNK]"]),
        ("a[CLS]b", ["a", "[CLS]", "b"]),
        ("[cls]", ["[", "cl", "##s", "]"]),
        ("[SEP", ["[", "sep"]),
        (
            "/etc/network/interfaces: bridge_ports eth0",
            ["/", "etc", "/", "network", "/", "interfaces", ":", "bridge", "_", "ports", "et", "##h", "##0"]
        ),
        (
            "x=1; y<2 && z>3 | ~w ^v `q`$",
            ["x", "=", "1", ";", "y", "<", "2", "&", "&", "z", ">", "3", "|", "~", "w", "^", "v", "`", "q", "`", "$"]
        ),
        ("ﬁ ligature ½ ①", ["ﬁ", "liga", "##ture", "½", "[UNK]"]),
        ("Straße ǅ ΣΑΣ", ["st", "##raße", "[UNK]", "σ", "##α", "##σ"]),
        ("\u{0}nul\u{FFFD}rep", ["nu", "##lr", "##ep"]),
        // Unassigned code points are kept (U+0381), and U+FAE4 counts as a CJK ideograph.
        ("n\u{0381}t b\u{FAE4}x a\u{200D}b", ["[UNK]", "b", "[UNK]", "x", "ab"]),
        ("Ⅻ ㎏ ＡＢＣ", ["[UNK]", "[UNK]", "[UNK]"]),
    ]

    @Test(.enabled(if: tokenizer != nil, Comment(rawValue: miniLMAbsent)))
    func matchesTheReferenceTokenizer() throws {
        let tokenizer = try #require(Self.tokenizer)
        for (text, expected) in Self.cases {
            #expect(tokenizer.tokenize(text) == expected, "\(text.debugDescription)")
        }
        #expect(tokenizer.encode("") == [101, 102])
        #expect(tokenizer.encode("The weather is lovely today.") == [101, 1996, 4633, 2003, 8403, 2651, 1012, 102])
        // 100 characters is still a word; 101 is [UNK].
        #expect(tokenizer.tokenize(String(repeating: "a", count: 100)).count == 50)
    }

    @Test(.enabled(if: tokenizer != nil, Comment(rawValue: miniLMAbsent)))
    func truncatesTo256TokensAndChunksExactly() throws {
        let tokenizer = try #require(Self.tokenizer)
        // Long enough to need several 4096-character chunks, with words across chunk ends.
        let text = (0..<3000).map { "interface\($0 % 97) bridge-port\u{0C}x Café;" }.joined(separator: " ")
        let whole = tokenizer.basicTokens(text).flatMap { tokenizer.wordPieceIDs($0) }
        #expect(tokenizer.pieceIDs(text) == whole)
        let encoded = tokenizer.encode(text)
        #expect(encoded.count == 256)
        #expect(encoded.first == tokenizer.clsID && encoded.last == tokenizer.sepID)
        #expect(Array(encoded[1..<255]) == Array(whole.prefix(254)))
    }
}

@Suite struct WordPieceAlgorithmTests {
    let tokenizer = try! WordPieceTokenizer(
        tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "##a", "a", "b", "##b", ".", "!"],
        maxLength: 6)

    @Test func greedyLongestMatchFirst() {
        #expect(tokenizer.tokenize("unaffable") == ["un", "##aff", "##able"])
        #expect(tokenizer.tokenize("UNAFFABLE!") == ["un", "##aff", "##able", "!"])
        #expect(tokenizer.tokenize("affa.b") == ["aff", "##a", ".", "b"])
        #expect(tokenizer.tokenize("abb") == ["a", "##b", "##b"])
    }

    @Test func unmatchedWordsAreUnknownWhole() {
        #expect(tokenizer.tokenize("unaffablex b") == ["[UNK]", "b"])
        #expect(tokenizer.tokenize("c") == ["[UNK]"])
        #expect(tokenizer.tokenize(String(repeating: "a", count: 101)) == ["[UNK]"])
    }

    @Test func encodeAddsSpecialTokensAndTruncates() {
        #expect(tokenizer.encode("a b") == [2, 9, 10, 3])
        #expect(tokenizer.encode("a b a b a b") == [2, 9, 10, 9, 10, 3])
        #expect(tokenizer.encode("") == [2, 3])
    }

    @Test func vocabularyWithoutSpecialTokensIsAnError() {
        #expect(throws: WordPieceError.missingSpecialToken(path: "<memory>", token: "[UNK]")) {
            try WordPieceTokenizer(tokens: ["a", "b"])
        }
        #expect(throws: WordPieceError.badMaxLength(1)) {
            try WordPieceTokenizer(tokens: ["[UNK]", "[CLS]", "[SEP]"], maxLength: 1)
        }
    }
}

@Suite struct SafeTensorsTests {
    /// A safetensors file from a header object and the data bytes.
    static func file(header: Any, data: [UInt8], rawHeader: [UInt8]? = nil) -> Data {
        let json = rawHeader ?? [UInt8](try! JSONSerialization.data(withJSONObject: header))
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        out.append(contentsOf: data)
        return out
    }

    static func bytes(_ floats: [Float]) -> [UInt8] {
        floats.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
    }

    @Test func readsF32F16BF16() throws {
        let f32 = Self.bytes([1, -2.5, 3, 0.125, 5, 6])
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C]  // 1, -2, 2^-24, +inf
        let bf16: [UInt8] = [0x80, 0x3F, 0x20, 0xC1]  // 1, -10
        let data = Self.file(
            header: [
                "__metadata__": ["format": "pt"],
                "a": ["dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]],
                "h": ["dtype": "F16", "shape": [4], "data_offsets": [24, 32]],
                "b": ["dtype": "BF16", "shape": [2], "data_offsets": [32, 36]],
                "i": ["dtype": "I64", "shape": [1], "data_offsets": [36, 44]],
            ], data: f32 + f16 + bf16 + [UInt8](repeating: 0, count: 8))
        let file = try SafeTensorsFile(data: data, path: "t.safetensors")
        #expect(file.names == ["a", "b", "h", "i"])
        #expect(file.metadata == ["format": "pt"])
        #expect(try file.floats("a", shape: [2, 3]) == [1, -2.5, 3, 0.125, 5, 6])
        #expect(try file.floats("h") == [1, -2, Float(bitPattern: 0x3380_0000), .infinity])
        #expect(try file.floats("b") == [1, -10])
        #expect(
            throws: SafeTensorsError.badTensor(
                path: "t.safetensors", name: "a", reason: "shape [2, 3], expected [3, 2]")
        ) {
            try file.floats("a", shape: [3, 2])
        }
        #expect(throws: SafeTensorsError.missingTensor(path: "t.safetensors", name: "zz")) { try file.floats("zz") }
        #expect(throws: SafeTensorsError.self) { try file.floats("i") }
    }

    @Test func halfPrecisionConversion() {
        #expect(SafeTensorsFile.halfToFloat(0x3C00) == 1)
        #expect(SafeTensorsFile.halfToFloat(0x3555) == Float(0x3555 & 0x3FF | 0x400) / 1024 / 4)
        #expect(SafeTensorsFile.halfToFloat(0x7BFF) == 65504)
        #expect(SafeTensorsFile.halfToFloat(0x8000).sign == .minus)
        #expect(SafeTensorsFile.halfToFloat(0x7E00).isNaN)
    }

    @Test func truncatedFilesAreErrors() {
        let good = Self.file(
            header: ["a": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]]], data: Self.bytes([1, 2]))
        for cut in [0, 3, 7, 8, 20, good.count - 1] {
            #expect(throws: SafeTensorsError.self, "cut at \(cut)") {
                try SafeTensorsFile(data: good.prefix(cut), path: "cut.safetensors")
            }
        }
        do {
            _ = try SafeTensorsFile(data: good.prefix(good.count - 1), path: "cut.safetensors")
        } catch let error as SafeTensorsError {
            guard case .truncated = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.description.contains("cut.safetensors") && error.description.contains("'a'"))
        } catch { Issue.record("\(error)") }
        // A header length far beyond the file.
        var huge = Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        huge.append(contentsOf: [UInt8]("{}".utf8))
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(data: huge, path: "huge") }
    }

    @Test func badHeadersAreErrors() {
        let cases: [(String, Data)] = [
            ("not JSON", Self.file(header: [:], data: [], rawHeader: [UInt8]("{\"a\": [".utf8))),
            ("not an object", Self.file(header: [1, 2], data: [])),
            ("binary", Self.file(header: [:], data: [], rawHeader: [0xFF, 0xFE, 0x00])),
            ("no dtype", Self.file(header: ["a": ["shape": [1], "data_offsets": [0, 4]]], data: [0, 0, 0, 0])),
            (
                "unknown dtype",
                Self.file(header: ["a": ["dtype": "F7", "shape": [1], "data_offsets": [0, 4]]], data: [0, 0, 0, 0])
            ),
            (
                "shape/size",
                Self.file(header: ["a": ["dtype": "F32", "shape": [2], "data_offsets": [0, 4]]], data: [0, 0, 0, 0])
            ),
            (
                "negative shape",
                Self.file(header: ["a": ["dtype": "F32", "shape": [-1], "data_offsets": [0, 4]]], data: [0, 0, 0, 0])
            ),
            (
                "fractional shape",
                Self.file(
                    header: ["a": ["dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]]], data: [0, 0, 0, 0])
            ),
            (
                "offsets reversed",
                Self.file(header: ["a": ["dtype": "F32", "shape": [0], "data_offsets": [4, 0]]], data: [0, 0, 0, 0])
            ),
            ("offsets missing", Self.file(header: ["a": ["dtype": "F32", "shape": [1]]], data: [0, 0, 0, 0])),
            ("entry not object", Self.file(header: ["a": 3], data: [])),
        ]
        for (what, data) in cases {
            #expect(throws: SafeTensorsError.self, "\(what)") {
                try SafeTensorsFile(data: data, path: "bad.safetensors")
            }
        }
    }

    @Test func unreadableFileNamesThePath() throws {
        let error = #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: "/nonexistent/m.safetensors") }
        #expect(error?.description.contains("/nonexistent/m.safetensors") == true)
        // A real (truncated) file on disk goes through the mapped path too.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("trunc-\(UUID()).safetensors").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data([1, 0, 0])))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(path: path) }
    }
}

@Suite struct BertEncoderTests {
    @Test(.enabled(if: miniLM != nil, Comment(rawValue: miniLMAbsent)))
    func rejectsBadInput() throws {
        let model = try #require(miniLM).get()
        #expect(throws: BertEncoderError.sequenceTooLong(length: 513, max: 512)) {
            try model.encoder.hiddenStates([[Int32](repeating: 101, count: 513)])
        }
        #expect(throws: BertEncoderError.tokenOutOfRange(id: 30522, vocabularySize: 30522)) {
            try model.encoder.hiddenStates([[101, 30522, 102]])
        }
        #expect(try model.encoder.hiddenStates([]) == [])
    }

    @Test func readsConfig() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(
            #"{"model_type": "bert", "hidden_size": 384, "num_attention_heads": 12, "layer_norm_eps": 1e-12}"#.utf8
        )
        .write(to: URL(fileURLWithPath: path))
        #expect(try BertConfig(configFile: path) == .miniLML6)
        try Data(#"{"hidden_act": "gelu_new"}"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: BertEncoderError.self) { try BertConfig(configFile: path) }
    }
}
