import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs keygen KEY [--store STORE]`: makes an Ed25519 key pair for signing blocks.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an Ed25519 key pair for signing block headers.",
        discussion: """
            Writes the private key to KEY (unencrypted PKCS#8 PEM, mode 0600) and the public key to \
            KEY.pub (SubjectPublicKeyInfo PEM), and prints the key id: the SHA-256 of the 32-byte raw \
            public key, which every signature carries. Both files are what `openssl pkey` reads. \
            Refuses to overwrite either file.

            With --store, the store is also set to sign with the new key (as `layerfs signing-key \
            STORE KEY` does): every block sealed from then on, by the mount, `seal` or `import --seal`, \
            carries a signature. Keep KEY outside the store: the store is snapshotted and streamed to \
            replicas. Give KEY.pub to whoever verifies: `layerfs verify STORE --pubkey KEY.pub`.

            EXAMPLES:
              layerfs keygen /etc/layerfs/keys/edge-1 --store /srv/layer
              layerfs verify /srv/layer --pubkey /etc/layerfs/keys/edge-1.pub
            """)

    @Argument(help: ArgumentHelp("Where to write the private key (the public key goes to KEY.pub).", valueName: "key"))
    var key: String

    @Option(help: ArgumentHelp("Also set this store to sign its blocks with the new key.", valueName: "store"))
    var store: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let publicPath = key + ".pub"
            for path in [key, publicPath] where access(path, F_OK) == 0 {
                throw CLIError("\(Describe.text(path)) exists: keygen never overwrites a key", status: .cannotCreate)
            }
            let privateKey = try during(.operation) { () throws(LayerError) in try Ed25519.PrivateKey.generate() }
            try OutputFile.write(key, privateKey.pem, mode: 0o600, exclusive: true)
            try OutputFile.write(publicPath, privateKey.publicKey.pem, mode: 0o644, exclusive: true)
            let out = context.output
            out.line("private key  \(Describe.text(StoreAccess.absolute(key))) (keep it secret: mode 0600)")
            out.line("public key   \(Describe.text(StoreAccess.absolute(publicPath)))")
            out.line("key id       \(privateKey.publicKey.id.hex)")
            if let store {
                let storePath = StoreAccess.absolute(store)
                try during(.operation) { () throws(LayerError) in try Store.setSigningKey(storePath, keyPath: StoreAccess.absolute(key)) }
                out.line("store        \(Describe.text(storePath)) signs every block it seals from now on with this key")
            }
        }
    }

}

/// `layerfs signing-key STORE [KEY | --none]`: shows or sets the key that signs a store's blocks.
struct SigningKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signing-key",
        abstract: "Show or set the private key that signs a store's blocks.",
        discussion: """
            Without KEY, prints the store's setting: the path of its signing key and the key id, or \
            "none". With KEY (a private key as `layerfs keygen` writes it, mode 0600), the store signs \
            every block sealed from then on with it; the key is read first, so a store is never set to \
            a key it cannot use. --none stops signing. The setting is the file metadata/signing_key \
            in the store (the key's absolute path); a writer that cannot read the key refuses to open \
            the store rather than seal unsigned blocks.

            Rotation: make a new key pair, set it here, and have verifiers trust both public keys \
            (`verify --pubkey OLD.pub --pubkey NEW.pub`) — old blocks keep the old signatures.
            A running mount reads the setting when it opens the store: remount to apply a change.

            EXAMPLES:
              layerfs signing-key /srv/layer
              layerfs signing-key /srv/layer /etc/layerfs/keys/edge-2
              layerfs signing-key /srv/layer --none
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("The private key to sign with.", valueName: "key"))
    var key: String?

    @Flag(help: "Stop signing blocks.")
    var none = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if none && key != nil { throw ValidationError("give either KEY or --none, not both") }
    }

    func run() throws {
        try global.run { context in
            let storePath = StoreAccess.absolute(store)
            guard access(Store.eventsPath(storePath), F_OK) == 0 else {
                throw CLIError("\(Describe.text(storePath)) is not a layerfs store (no events.jsonl)", status: .noInput)
            }
            guard !Replica.isReplica(storePath) else {
                throw CLIError("\(Describe.text(storePath)) is a replica: it seals nothing, so it signs nothing", status: .usage)
            }
            let out = context.output
            if key != nil || none {
                let keyPath = key.map(StoreAccess.absolute)
                try during(.operation) { () throws(LayerError) in try Store.setSigningKey(storePath, keyPath: keyPath) }
            }
            guard let keyPath = try during(.openingStore, { () throws(LayerError) in try Store.signingKeySetting(storePath) }) else {
                out.line("none: blocks of \(Describe.text(storePath)) are not signed")
                return
            }
            let keyID = try during(.operation) { () throws(LayerError) in try Ed25519.PrivateKey(contentsOf: keyPath).publicKey.id }
            out.line("signing key  \(Describe.text(keyPath))")
            out.line("key id       \(keyID.hex)")
        }
    }
}
