import LayerCore

/// What the similarity index embeds for one file version: its path and its content.
///
/// - The text is the path (as a line of its own, with `/`, `-`, `_` and `.` as separators for the
///   embedder to split on), then the content.
/// - Content is taken as UTF-8 (invalid bytes become U+FFFD). Content with NUL bytes in its first
///   KiB is treated as binary: only the path is embedded.
/// - Only the first `contentLimit` bytes of content are embedded (config files are far shorter;
///   MiniLM itself reads at most 256 tokens of it).
public enum IndexedText {
    public static let contentLimit = 16_384

    public static func make(path: String, content: [UInt8]) -> String {
        let head = content.prefix(contentLimit)
        if head.prefix(1024).contains(0) { return path }
        return path + "\n" + String(decoding: head, as: UTF8.self)
    }

    /// Whether an event produces a new content to index (a write or a truncate of a file).
    public static func isIndexed(_ event: Event) -> Bool {
        (event.operation == .write || event.operation == .truncate) && event.path != nil
    }
}
