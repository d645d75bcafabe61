import ArgumentParser
import LayerCore

/// `--pubkey KEY` (repeatable): the Ed25519 public keys whose block signatures are trusted.
struct TrustedKeyOptions: ParsableArguments {
    @Option(
        name: .customLong("pubkey"),
        help: ArgumentHelp(
            "A trusted Ed25519 public key (PEM, as `layerfs keygen` writes KEY.pub). Repeat for several keys (rotation).",
            valueName: "key"))
    var paths: [String] = []

    /// The keys, read; a key that cannot be read is a usage error naming the file.
    func load() throws(CLIError) -> [Ed25519.PublicKey] {
        var keys: [Ed25519.PublicKey] = []
        for path in paths {
            do throws(LayerError) { keys.append(try Ed25519.PublicKey(contentsOf: path)) } catch {
                throw CLIError("--pubkey: \(Describe.text(error.message))", status: error.code == .notFound ? .noInput : .usage)
            }
        }
        return keys
    }
}
