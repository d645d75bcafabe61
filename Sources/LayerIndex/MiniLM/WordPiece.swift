import Foundation

public enum WordPieceError: Error, CustomStringConvertible, Equatable {
    case unreadableVocabulary(path: String, reason: String)
    case missingSpecialToken(path: String, token: String)
    case badMaxLength(Int)

    public var description: String {
        switch self {
        case .unreadableVocabulary(let path, let reason): "vocabulary \(path): cannot read: \(reason)"
        case .missingSpecialToken(let path, let token): "vocabulary \(path): has no \(token) token"
        case .badMaxLength(let n): "tokenizer max length \(n): must be at least 2 ([CLS] and [SEP])"
        }
    }
}

/// BERT's uncased tokenizer: basic tokenization, then greedy longest-match-first WordPiece.
///
/// Basic tokenization (what BERT's `BertNormalizer` + `BertPreTokenizer` do for an uncased vocabulary):
///  1. clean: drop U+0000, U+FFFD and control, format, private-use and surrogate characters
///     (categories Cc, Cf, Co, Cs, but not tab, newline and carriage return, which are whitespace);
///     turn every whitespace character (space, tab, newline, carriage return, category Zs) into a space;
///  2. put spaces around CJK ideographs, so each becomes a word of its own;
///  3. strip accents: canonical decomposition (NFD), then drop non-spacing marks (category Mn);
///  4. lowercase (full Unicode lowercase mapping);
///  5. split on whitespace, and make each punctuation character (ASCII punctuation, or category P*)
///     a word of its own.
///
/// WordPiece: a word longer than 100 characters is `[UNK]`; otherwise take the longest vocabulary
/// entry that starts the word, then the longest `##`-prefixed entry that starts the rest, and so on;
/// if at some point nothing matches, the whole word is `[UNK]`.
///
/// The special tokens written literally in the text ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]",
/// case-sensitive) are their own ids, as the reference (Hugging Face) tokenizer has it.
///
/// `encode` wraps the pieces in `[CLS] … [SEP]` and truncates: at most `maxLength` ids in all
/// (256 for all-MiniLM-L6-v2, its sentence-transformers `max_seq_length`), so at most
/// `maxLength - 2` word pieces are kept — the ones at the start of the text; the rest is ignored.
public struct WordPieceTokenizer: Sendable {
    public let vocabulary: [String: Int32]
    public let tokens: [String]
    public let maxLength: Int
    public let lowercase: Bool
    public let unknownID: Int32
    public let clsID: Int32
    public let sepID: Int32
    /// The special tokens of the vocabulary, matched literally in the text.
    let specialTokenIDs: [(scalars: [Unicode.Scalar], id: Int32)]
    public static let maxCharactersPerWord = 100

    /// Reads `vocab.txt`: one token a line, the line number (from 0) is its id.
    public init(vocabularyFile path: String, maxLength: Int = 256, lowercase: Bool = true) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw WordPieceError.unreadableVocabulary(path: path, reason: error.localizedDescription)
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        if lines.last == "" { lines.removeLast() }  // the final newline
        try self.init(tokens: lines, maxLength: maxLength, lowercase: lowercase, source: path)
    }

    public init(tokens: [String], maxLength: Int = 256, lowercase: Bool = true, source: String = "<memory>") throws {
        guard maxLength >= 2 else { throw WordPieceError.badMaxLength(maxLength) }
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where vocabulary[t] == nil { vocabulary[t] = Int32(i) }
        func special(_ t: String) throws -> Int32 {
            guard let id = vocabulary[t] else { throw WordPieceError.missingSpecialToken(path: source, token: t) }
            return id
        }
        self.vocabulary = vocabulary
        self.tokens = tokens
        self.maxLength = maxLength
        self.lowercase = lowercase
        self.unknownID = try special("[UNK]")
        self.clsID = try special("[CLS]")
        self.sepID = try special("[SEP]")
        self.specialTokenIDs = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"].compactMap { t in
            vocabulary[t].map { (scalars: Array(t.unicodeScalars), id: $0) }
        }
    }

    // MARK: basic tokenization

    /// Steps 1–5 above: the words (and single punctuation characters) of `text`.
    public func basicTokens(_ text: String) -> [String] {
        // 1 and 2: clean, space out CJK ideographs.
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
            if Self.isBertWhitespace(s) {
                cleaned.append(" ")
            } else if Self.isCJK(s) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        var normalized = String(cleaned)
        if lowercase {
            // 3: strip accents; 4: lowercase.
            var stripped = String.UnicodeScalarView()
            for s in normalized.decomposedStringWithCanonicalMapping.unicodeScalars
            where s.properties.generalCategory != .nonspacingMark {
                stripped.append(s)
            }
            var lowered = String.UnicodeScalarView()
            for s in stripped {
                lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
            normalized = String(lowered)
        }
        // 5: split on whitespace, isolate punctuation.
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty {
                words.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        for s in normalized.unicodeScalars {
            if s.properties.isWhitespace {
                flush()
            } else if Self.isPunctuation(s) {
                flush()
                words.append(String(s))
            } else {
                current.append(s)
            }
        }
        flush()
        return words
    }

    static func isBertWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        // Not .unassigned: the reference (Rust) tokenizer keeps unassigned code points.
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
            return true
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks and their extensions and compatibility blocks
    /// (not Hiragana, Katakana or Hangul, which are written with spaces or split as words).
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
            0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default: return false
        }
    }

    // MARK: WordPiece

    /// The word pieces of one basic token (ids), `[unknownID]` if it cannot be covered.
    public func wordPieceIDs(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        if chars.isEmpty { return [] }
        if chars.count > Self.maxCharactersPerWord { return [unknownID] }
        var ids: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32? = nil
            while end > start {
                var piece = start > 0 ? "##" : ""
                piece.unicodeScalars.append(contentsOf: chars[start..<end])
                if let id = vocabulary[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [unknownID] }
            ids.append(id)
            start = end
        }
        return ids
    }

    /// Word piece ids of `text`, without the [CLS]/[SEP] around it; at most `limit` of them
    /// (the first ones).
    ///
    /// The special tokens ([CLS], [SEP], [UNK], [PAD], [MASK]) written literally in the text, exactly
    /// so and in capitals, stand for themselves, as in the reference tokenizer.
    ///
    /// Long texts are tokenized a chunk at a time and only until enough pieces are found, so the
    /// cost is bounded by what is kept. Chunks end at a space, tab, newline or carriage return:
    /// those always end a word (they are never dropped like control characters, which can join two
    /// halves of a word), so chunking gives exactly the pieces of tokenizing the whole text.
    public func pieceIDs(_ text: String, limit: Int = .max) -> [Int32] {
        var pieces: [Int32] = []
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        chunks: while start < scalars.endIndex {
            var end = scalars.index(start, offsetBy: 4096, limitedBy: scalars.endIndex) ?? scalars.endIndex
            while end < scalars.endIndex, !Self.endsWord(scalars[end]) { end = scalars.index(after: end) }
            for segment in splitSpecial(scalars[start..<end]) {
                switch segment {
                case .special(let id):
                    pieces.append(id)
                    if pieces.count >= limit { break chunks }
                case .text(let text):
                    for word in basicTokens(text) {
                        pieces += wordPieceIDs(word)
                        if pieces.count >= limit { break chunks }
                    }
                }
            }
            start = end
        }
        return Array(pieces.prefix(limit))
    }

    /// Word pieces of `text` as strings (for tests and inspection).
    public func tokenize(_ text: String) -> [String] {
        pieceIDs(text).map { tokens[Int($0)] }
    }

    /// The model's input: `[CLS]`, the first `maxLength - 2` word pieces, `[SEP]`.
    public func encode(_ text: String) -> [Int32] {
        [clsID] + pieceIDs(text, limit: maxLength - 2) + [sepID]
    }

    enum Segment: Equatable {
        case text(String)
        case special(Int32)
    }

    /// Cuts out the literal special tokens.
    func splitSpecial(_ scalars: Substring.UnicodeScalarView) -> [Segment] {
        var segments: [Segment] = []
        var textStart = scalars.startIndex
        var i = scalars.startIndex
        while i < scalars.endIndex {
            if scalars[i] == "[", let match = specialTokenIDs.first(where: { scalars[i...].starts(with: $0.scalars) }) {
                if textStart < i { segments.append(.text(String(scalars[textStart..<i]))) }
                segments.append(.special(match.id))
                i = scalars.index(i, offsetBy: match.scalars.count)
                textStart = i
            } else {
                i = scalars.index(after: i)
            }
        }
        if textStart < scalars.endIndex { segments.append(.text(String(scalars[textStart..<scalars.endIndex]))) }
        return segments
    }

    private static func endsWord(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\n" || s == "\t" || s == "\r"
    }
}
