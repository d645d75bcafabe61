// Replication between two loop-mounted btrfs filesystems made by the test: `layerfs send`,
// `layerfs receive`, mount-helpers/layerfs-replicate and `layerfs mount --replica`, and every
// refusal the receiver owes: a damaged stream, tampered content, a fork, a gap, another store, and
// an interrupted stream that is resumed.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The repository root (Tests/LayerIntegrationTests/<this file>).
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Runs a bash script with $LAYERFS set to the binary under test; returns (status, stdout, stderr).
@discardableResult
private func shell(_ script: String) throws -> CLIResult {
    let binary = try #require(CLI.binary)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-sh-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outPath = scratch.appendingPathComponent("stdout").path
    let errPath = scratch.appendingPathComponent("stderr").path
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", "set -o pipefail; " + script]
    var environment = ProcessInfo.processInfo.environment
    environment["LAYERFS"] = binary
    environment["PATH"] = (binary as NSString).deletingLastPathComponent + ":" + (environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    environment.removeValue(forKey: "LAYERFS_LOG_LEVEL")
    process.environment = environment
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return CLIResult(
        status: process.terminationStatus,
        stdoutBytes: Array(try Data(contentsOf: URL(fileURLWithPath: outPath))),
        stderr: String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self))
}

private func q(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// Runs `layerfs` and requires success.
@discardableResult
private func layerfs(_ arguments: String...) throws -> CLIResult {
    let result = try CLI.run(arguments)
    #expect(result.status == 0, "layerfs \(arguments.joined(separator: " ")): \(result.stderr)")
    return result
}

/// What a replica looks like from outside: its head file and its blocks/ entries.
private func replicaState(_ replica: String) throws -> [String] {
    let head = (try? String(contentsOfFile: replica + "/current_block", encoding: .utf8)) ?? "(none)"
    let blocks = (try? FileManager.default.contentsOfDirectory(atPath: replica + "/blocks").sorted()) ?? []
    return [head] + blocks
}

/// The event lines of `layerfs log` without the provenance columns (identical on both sides).
private func logLines(_ storeOrReplica: String) throws -> [String] {
    try layerfs("log", storeOrReplica, "--json").stdoutLines
}

/// Writes the next version of the primary's tree and imports it, sealing a block.
private func nextVersion(_ store: String, _ tree: String, round: Int) throws {
    try Tree.write(tree + "/etc/round", "round \(round)\n")
    try Tree.write(tree + "/etc/interfaces/eth\(round).conf", "iface eth\(round) inet dhcp\nmtu \(1400 + round)\n")
    if round % 2 == 0 { try? Tree.remove(tree + "/etc/interfaces/eth\(round - 1).conf") }
    // A blob-sized file too, so that streams carry objects/.
    try Tree.write(tree + "/var/big.bin", [UInt8]((0..<(70_000 + round)).map { UInt8(truncatingIfNeeded: $0 &* (round + 7)) }))
    try layerfs("import", store, tree, "--seal")
}

private func makeTree(_ tree: String) throws {
    for d in ["", "/etc", "/etc/interfaces", "/var"] { try Tree.mkdir(tree + d) }
    try Tree.write(tree + "/etc/hostname", "edge-1\n")
    try Tree.write(tree + "/etc/interfaces/br0.conf", "auto br0\niface br0 inet static\n  bridge_ports eth0 eth1\n")
}

/// Mounts with `layerfs mount` (which returns once mounted) and always unmounts afterwards.
private func withMount<T>(_ arguments: [String], at mountPoint: String, _ body: () throws -> T) throws -> T {
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
    let result = try CLI.run(["mount"] + arguments + [mountPoint])
    try #require(result.status == 0, "layerfs mount \(arguments): \(result.stderr)")
    defer {
        var unmounted = false
        for _ in 0..<50 {
            if (try? ExternalCommand.run("fusermount3", ["-u", mountPoint])) != nil { unmounted = true; break }
            usleep(100_000)
        }
        if !unmounted { _ = try? ExternalCommand.run("fusermount3", ["-uz", mountPoint]) }
        // The daemon closes the store after the kernel lets go; wait until it is gone.
        for _ in 0..<100 where (try? currentMountPoints().contains(mountPoint)) == true { usleep(50_000) }
    }
    return try body()
}

/// Two loop btrfs filesystems: the primary's and the replica's.
private func withTwoFilesystems(_ body: (_ primary: String, _ replicaFS: String) throws -> Void) throws {
    try withLoopBtrfs(sizeMiB: 256) { a in
        try withLoopBtrfs(sizeMiB: 256) { b in try body(a, b) }
    }
}

/// A private sshd on 127.0.0.1 for one test: its own host and client keys and config in `directory`,
/// root login by key only. It daemonizes itself (its pid in `directory`/sshd.pid) and is stopped by
/// `stop()` (the caller defers it). It is deliberately not a child of this process: while a
/// long-running child (sshd under Foundation's Process) was alive, Foundation did not reap the
/// test's other children and `waitUntilExit` hung on a zombie.
private final class PrivateSSHServer {
    let directory: String
    let port: Int

    static var unavailableReason: String? {
        for tool in ["sshd", "ssh", "ssh-keygen"] where ExternalCommand.find(tool) == nil {
            return "\(tool) is not installed (openssh-server, openssh-client)"
        }
        return nil
    }

    init(directory: String) throws {
        self.directory = directory
        try ExternalCommand.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory + "/host_key"])
        try ExternalCommand.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory + "/client_key"])
        try FileManager.default.copyItem(atPath: directory + "/client_key.pub", toPath: directory + "/authorized_keys")
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)  // privilege separation
        // A free port: bind port 0 and read what the kernel chose.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        close(fd)
        let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(directory)/host_key
            AuthorizedKeysFile \(directory)/authorized_keys
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PidFile \(directory)/sshd.pid

            """
        try config.write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)
        // sshd needs its absolute path to re-execute itself; without -D it detaches and returns.
        try ExternalCommand.run("sshd", ["-f", directory + "/sshd_config"])
        // Ready when it accepts a connection and greets with its banner.
        for _ in 0..<100 {
            if PrivateSSHServer.greets(port: port) { return }
            usleep(100_000)
        }
        stop()
        throw HarnessError("the private sshd on port \(port) did not accept a connection")
    }

    /// True when 127.0.0.1:`port` accepts a TCP connection and sends an SSH banner within 2 s.
    private static func greets(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return false }
        var banner = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &banner, banner.count)
        return count >= 4 && banner[0..<4] == Array("SSH-".utf8)[...]
    }

    var sshCommand: String {
        "ssh -p \(port) -i \(directory)/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    }

    /// Stops the daemon named by its pid file, and waits until it is gone.
    func stop() {
        guard let text = try? String(contentsOfFile: directory + "/sshd.pid", encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 where kill(pid, 0) == 0 { usleep(50_000) }
    }
}

@Suite(
    .serialized,
    .enabled(
        if: loopBtrfsUnavailableReason == nil && ExternalCommand.find("btrfs") != nil,
        "needs root, loop devices, btrfs-progs: see loopBtrfsUnavailableReason"))
struct ReplicationTests {
    @Test func fullThenIncrementalSendsKeepAReplicaInStepAndItMountsAndAgrees() throws {
        try withTwoFilesystems { a, b in
            let store = a + "/layer", tree = a + "/tree", replica = b + "/replica"
            try layerfs("init", store)
            try makeTree(tree)
            try nextVersion(store, tree, round: 1)

            // The first send: in full.
            let first = try shell("$LAYERFS send \(q(store)) | $LAYERFS receive \(q(replica))")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stderr.contains("sent block 1 (the first in full)"), "\(first.stderr)")
            #expect(first.stdout.contains("holds blocks 1...1"), "\(first.stdout)")
            #expect(try logLines(replica) == logLines(store))

            // Several incremental rounds, some through layerfs-replicate, some by hand.
            for round in 2...5 {
                try nextVersion(store, tree, round: round)
                if round == 3 {  // two blocks in one stream
                    try nextVersion(store, tree, round: 30)
                }
                let result =
                    round % 2 == 0
                    ? try shell("\(q(repositoryRoot + "/mount-helpers/layerfs-replicate")) \(q(store)) \(q(replica))")
                    : try shell("$LAYERFS send \(q(store)) --from $(( $($LAYERFS receive --print-head \(q(replica)) | cut -d' ' -f1) + 1 )) | $LAYERFS receive \(q(replica))")
                #expect(result.status == 0, "round \(round): \(result.stderr)")
                #expect(result.stderr.contains("an increment on block"), "round \(round) is incremental: \(result.stderr)")
                let primary = try Store.open(store, mode: .readOnly)
                let head = try #require(try Replica.head(replica))
                #expect(head.block == primary.blocks.last?.number && head.hash == primary.blocks.last?.hash)
                #expect(try logLines(replica) == logLines(store), "round \(round): the replica has the same events")
            }
            let verified = try layerfs("verify", replica)
            #expect(verified.stdout.contains("OK") && verified.stdout.contains("replica"))
            #expect(try layerfs("receive", "--print-head", replica).stdout.hasPrefix("6 "))

            // An up-to-date replica: an empty stream checks agreement and changes nothing.
            let before = try replicaState(replica)
            let again = try shell("\(q(repositoryRoot + "/mount-helpers/layerfs-replicate")) \(q(store)) \(q(replica))")
            #expect(again.status == 0 && again.stdout.contains("up to date"), "\(again.stdout)\(again.stderr)")
            #expect(try replicaState(replica) == before)

            // Writable commands refuse a replica.
            let refused = try CLI.run(["seal", replica])
            #expect(refused.status != 0 && refused.stderr.contains("is a replica"), "\(refused.stderr)")

            // Mounted side by side: the same @time and @block directories, byte for byte.
            let primaryStore = try Store.open(store, mode: .readOnly)
            let middle = try primaryStore.time(ofSequence: primaryStore.blocks[2].last).canonical
            try withMount([store, "-o", "ro,noindex"], at: a + "/mnt") {
                try withMount(["--replica", replica, "-o", "index_dir=\(b)/index"], at: b + "/mnt") {
                    for view in ["@time/\(middle)", "@time/latest", "@block/2", "@block/latest", "@history/etc/round"] {
                        let diff = try shell("diff -r \(q(a + "/mnt/" + view)) \(q(b + "/mnt/" + view))")
                        #expect(diff.status == 0 && diff.stdout.isEmpty, "diff -r of \(view): \(diff.stdout)\(diff.stderr)")
                    }
                    let present = try shell("diff -r \(q(a + "/mnt")) \(q(b + "/mnt"))")
                    #expect(present.status == 0, "the replica's present is the primary's last block: \(present.stdout)")
                    // Read-only, and @similar answers from the replica's own index.
                    let write = try shell("echo x > \(q(b + "/mnt/new"))")
                    #expect(write.status != 0 && write.stderr.contains("Read-only"), "\(write.stderr)")
                    var listed = ""
                    for _ in 0..<100 {
                        let ls = try shell("ls \(q(b + "/mnt/@similar/bridge ports#3"))")
                        if ls.status == 0 { listed = ls.stdout; break }
                        usleep(100_000)  // EAGAIN while the replica builds its index
                    }
                    #expect(listed.contains("br0.conf"), "the replica's @similar: \(listed)")
                    #expect(FileManager.default.fileExists(atPath: b + "/index/lock"), "the replica's own index, in its index_dir")
                }
            }
        }
    }

    @Test func tamperedStreamsForksGapsAndOtherStoresAreRefusedWithTheReplicaUntouched() throws {
        try withTwoFilesystems { a, b in
            let store = a + "/layer", tree = a + "/tree", replica = b + "/replica"
            try layerfs("init", store)
            try makeTree(tree)
            for round in 1...3 { try nextVersion(store, tree, round: round) }
            // The replica takes blocks 1 and 2.
            #expect(try shell("$LAYERFS send \(q(store)) --to 2 | $LAYERFS receive \(q(replica))").status == 0)
            let untouched = try replicaState(replica)
            func expectRefused(_ script: String, status: Int32, saying text: String, _ what: String) throws {
                let result = try shell(script)
                #expect(result.status == status, "\(what): status \(result.status): \(result.stderr)")
                #expect(result.stderr.contains(text), "\(what): \(result.stderr)")
                #expect(try replicaState(replica) == untouched, "\(what): the replica is untouched")
            }

            // 1. A byte of btrfs data changed in transit: the checksum catches it.
            let streamFile = a + "/block3.lfs"
            try layerfs("send", store, "--from", "3", "--output", streamFile)
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: streamFile)))
            let headerEnd = try #require(bytes.indices.filter { bytes[$0] == 0x0A }.dropFirst(2).first)  // magic, header, block line
            bytes[headerEnd + 4 + 200] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: a + "/flipped.lfs"))
            try expectRefused("$LAYERFS receive \(q(replica)) --input \(q(a + "/flipped.lfs"))", status: 65, saying: "checksum", "a flipped bit")

            // 2. Tampered content with a consistent stream: a copy of block 3's snapshot with an
            //    event edited, sent as an increment on block 2 with correct framing. btrfs
            //    receive applies it; verification refuses it.
            let primary = try Store.open(store, mode: .readOnly)
            let block2 = primary.blocks[1], block3 = primary.blocks[2]
            try FileManager.default.createDirectory(atPath: a + "/forge", withIntermediateDirectories: true)
            let forged = a + "/forge/" + block3.snapshotName
            try ExternalCommand.run("btrfs", ["subvolume", "snapshot", primary.snapshotPath(of: block3), forged])
            var log = try String(contentsOfFile: forged + "/events.jsonl", encoding: .utf8)
            let edited = try #require(log.range(of: "edge-1"))
            log.replaceSubrange(edited, with: "evil-1")
            try log.write(toFile: forged + "/events.jsonl", atomically: false, encoding: .utf8)
            try ExternalCommand.run("btrfs", ["property", "set", "-ts", forged, "ro", "true"])
            let raw = a + "/forged.btrfs"
            #expect(try shell("btrfs send -q -p \(q(primary.snapshotPath(of: block2))) \(q(forged)) > \(q(raw))").status == 0)
            let btrfsBytes = Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
            var stream = ReplicationStream.magic
            stream += ReplicationStream.encode(
                ReplicationStream.Header(store: primary.storeID, first: 3, last: 3, base: 2, baseHash: block2.hash))
            var header = block3
            stream += BlockHeader.seal(&header)
            var offset = 0
            while offset < btrfsBytes.count {
                let n = min(65536, btrfsBytes.count - offset)
                stream += [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
                stream += btrfsBytes[offset..<(offset + n)]
                offset += n
            }
            stream += [0, 0, 0, 0]
            stream += ReplicationStream.encode(ReplicationStream.Trailer(bytes: UInt64(btrfsBytes.count), sha256: SHA256.hash(btrfsBytes)))
            stream += ReplicationStream.encodeEnd(blocks: 1)
            try Data(stream).write(to: URL(fileURLWithPath: a + "/forged.lfs"))
            try expectRefused("$LAYERFS receive \(q(replica)) --input \(q(a + "/forged.lfs"))", status: 65, saying: "failed verification", "tampered content")

            // 3. A gap: block 3 is missing, the stream starts at 4.
            try nextVersion(store, tree, round: 4)
            try expectRefused(
                "$LAYERFS send \(q(store)) --from 4 | $LAYERFS receive \(q(replica))", status: 1, saying: "send from block 3", "a gap")

            // 4. Another store's stream.
            let other = a + "/other"
            try layerfs("init", other)
            try layerfs("import", other, tree, "--seal")
            try expectRefused(
                "$LAYERFS send \(q(other)) | $LAYERFS receive \(q(replica))", status: 65, saying: "but this replica holds store", "another store")

            // 5. A fork: a copy of the primary as of block 2 goes its own way and seals its own
            //    block 3. Once the replica holds the real block 3, the fork's is refused.
            #expect(try shell("$LAYERFS send \(q(store)) --from 3 --to 3 | $LAYERFS receive \(q(replica))").status == 0)
            let afterReal = try replicaState(replica)
            let fork = a + "/fork"
            try ExternalCommand.run("btrfs", ["subvolume", "snapshot", primary.snapshotPath(of: block2), fork])
            try Tree.write(tree + "/etc/hostname", "forked\n")
            try layerfs("import", fork, tree, "--seal")
            let forkResult = try shell("$LAYERFS send \(q(fork)) --from 3 --full | $LAYERFS receive \(q(replica))")
            #expect(forkResult.status == 65 && forkResult.stderr.contains("fork"), "\(forkResult.stderr)")
            #expect(try replicaState(replica) == afterReal, "the fork left the replica untouched")
            #expect(try layerfs("verify", replica).stdout.contains("OK"))
        }
    }

    /// layerfs-replicate over a real ssh connection (a private sshd on 127.0.0.1), twice: the
    /// second run sends only the new block.
    @Test(.enabled(if: PrivateSSHServer.unavailableReason == nil, "needs openssh-server and openssh-client"))
    func layerfsReplicateOverSSH() throws {
        try withTwoFilesystems { a, b in
            let store = a + "/layer", tree = a + "/tree", replica = b + "/replica"
            try layerfs("init", store)
            try makeTree(tree)
            for round in 1...2 { try nextVersion(store, tree, round: round) }
            let keys = a + "/ssh"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            let server = try PrivateSSHServer(directory: keys)
            defer { server.stop() }
            let binary = try #require(CLI.binary)
            let replicate = "\(q(repositoryRoot + "/mount-helpers/layerfs-replicate")) --ssh \(q(server.sshCommand)) --remote-layerfs \(q(binary))"
            let first = try shell("\(replicate) \(q(store)) root@127.0.0.1:\(q(replica))")
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stderr.contains("holds no blocks: sending from block 1"), "\(first.stderr)")
            #expect(try Replica.head(replica)?.block == 2)
            try nextVersion(store, tree, round: 3)
            let second = try shell("\(replicate) \(q(store)) root@127.0.0.1:\(q(replica))")
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stderr.contains("sending from block 3") && second.stderr.contains("accepted block 3"), "\(second.stderr)")
            #expect(try logLines(replica) == logLines(store))
            // A refusal on the far side comes back as layerfs-replicate's status.
            let other = a + "/other"
            try layerfs("init", other)
            try layerfs("import", other, tree, "--seal")
            let refused = try shell("\(replicate) \(q(other)) root@127.0.0.1:\(q(replica))")
            #expect(refused.status == 65 && refused.stderr.contains("this replica holds store"), "\(refused.stderr)")
        }
    }

    /// Signed blocks travel in the stream; `receive --pubkey` refuses an unsigned or foreign-signed
    /// block before applying it; the replica verifies with --pubkey and serves the same proofs
    /// (`prove`, and user.layerfs.proof in its mount) as the primary.
    @Test func signedBlocksReplicateAndTheReplicaProvesThem() throws {
        try withTwoFilesystems { a, b in
            let store = a + "/layer", tree = a + "/tree", replica = b + "/replica"
            try layerfs("init", store)
            try layerfs("keygen", a + "/key", "--store", store)
            try makeTree(tree)
            for round in 1...2 { try nextVersion(store, tree, round: round) }
            let sent = try shell("$LAYERFS send \(q(store)) | $LAYERFS receive \(q(replica)) --pubkey \(q(a + "/key.pub"))")
            #expect(sent.status == 0, "\(sent.stderr)")
            #expect(try layerfs("verify", replica, "--pubkey", a + "/key.pub").stdout.contains("signatures 2 of 2"))

            // An unsigned block 3 is refused by a receiver that requires signatures; untouched.
            try layerfs("signing-key", store, "--none")
            try nextVersion(store, tree, round: 3)
            let before = try replicaState(replica)
            let unsigned = try shell("$LAYERFS send \(q(store)) --from 3 | $LAYERFS receive \(q(replica)) --pubkey \(q(a + "/key.pub"))")
            #expect(unsigned.status == 65 && unsigned.stderr.contains("block 3 is not signed"), "\(unsigned.stderr)")
            #expect(try replicaState(replica) == before)
            // Signed blocks, by a key the receiver does not trust: refused too (a new replica).
            try layerfs("keygen", a + "/otherkey")
            let otherKeyed = try shell("$LAYERFS send \(q(store)) --to 2 | $LAYERFS receive \(q(b + "/replica2")) --pubkey \(q(a + "/otherkey.pub"))")
            #expect(otherKeyed.status == 65 && otherKeyed.stderr.contains("block 1 is signed by key") && otherKeyed.stderr.contains("not a trusted key"), "\(otherKeyed.stderr)")
            #expect(try Replica.head(b + "/replica2")?.block == nil)

            // The same proof of a file's version from the primary, from the replica, and from the
            // replica's mount.
            let primary = try Store.open(store, mode: .readOnly)
            let seq = try #require((1...primary.blocks[0].last).first { (try? primary.event($0).operation) == .write })
            let fromPrimary = try layerfs("prove", store, "--seq", String(seq)).stdoutBytes
            let fromReplica = try layerfs("prove", replica, "--seq", String(seq)).stdoutBytes
            #expect(fromPrimary == fromReplica)
            let path = try #require(try primary.event(seq).path)
            try withMount(["--replica", replica, "-o", "noindex"], at: b + "/mnt") {
                let attribute = try shell("getfattr --only-values -n user.layerfs.proof \(q(b + "/mnt/@block/1" + path))")
                #expect(attribute.status == 0, "\(attribute.stderr)")
                #expect(attribute.stdoutBytes == fromPrimary)
                let checked = try shell(
                    "getfattr --only-values -n user.layerfs.proof \(q(b + "/mnt/@block/1" + path)) | $LAYERFS verify-proof - --pubkey \(q(a + "/key.pub")) --store \(q(replica))")
                #expect(checked.status == 0 && checked.stdout.contains("signature  valid"), "\(checked.stdout)\(checked.stderr)")
            }
        }
    }

    @Test func anInterruptedStreamIsResumed() throws {
        try withTwoFilesystems { a, b in
            let store = a + "/layer", tree = a + "/tree", replica = b + "/replica"
            try layerfs("init", store)
            try makeTree(tree)
            for round in 1...4 { try nextVersion(store, tree, round: round) }
            let streamFile = a + "/all.lfs"
            try layerfs("send", store, "--output", streamFile)
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: streamFile)))
            // Cut in the middle of block 3's data: just after its header line.
            let text = bytes.indices.filter { bytes[$0] == 0x0A }
            let primary = try Store.open(store, mode: .readOnly)
            var block3 = primary.blocks[2]
            let line = BlockHeader.seal(&block3)
            let start = try #require((0..<(bytes.count - line.count)).first { bytes[$0..<($0 + line.count)].elementsEqual(line) })
            #expect(!text.isEmpty)
            try Data(bytes[0..<(start + line.count + 1000)]).write(to: URL(fileURLWithPath: a + "/cut.lfs"))
            let cut = try CLI.run(["receive", replica, "--input", a + "/cut.lfs"])
            #expect(cut.status == 74 && cut.stderr.contains("ended early"), "\(cut.stderr)")
            #expect(try Replica.head(replica)?.block == 2, "blocks 1 and 2 were accepted before the cut")
            let state = try replicaState(replica)
            #expect(state.count == 3, "no partial block 3 stays: \(state)")

            // A receive killed by the OS can leave a partial, writable subvolume: the next receive
            // deletes it before it starts.
            try ExternalCommand.run("btrfs", ["subvolume", "create", replica + "/blocks/block-3-000000000000"])
            let resumed = try shell("\(q(repositoryRoot + "/mount-helpers/layerfs-replicate")) \(q(store)) \(q(replica))")
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(resumed.stderr.contains("sending from block 3"), "\(resumed.stderr)")
            #expect(try Replica.head(replica)?.block == 4)
            #expect(!FileManager.default.fileExists(atPath: replica + "/blocks/block-3-000000000000"))
            #expect(try logLines(replica) == logLines(store))
            #expect(try layerfs("verify", replica).stdout.contains("OK"))

            // OPERATIONS.md, "Recovering": a lost primary is restored from the replica, keeps
            // going, and replicates to a fresh replica.
            let restored = b + "/restored"
            let restore = try shell(
                "R=\(q(replica)); last=$(ls -v $R/blocks | tail -1); btrfs subvolume snapshot $R/blocks/$last \(q(restored))"
                    + " && for b in $R/blocks/*; do btrfs subvolume snapshot -r $b \(q(restored))/.snapshots/${b##*/}; done")
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(try layerfs("verify", restored).stdout.contains("snapshots  4 of 4 present"))
            #expect(try logLines(restored) == logLines(store))
            try nextVersion(restored, tree, round: 5)
            let fresh = try shell("$LAYERFS send \(q(restored)) | $LAYERFS receive \(q(b + "/replica2"))")
            #expect(fresh.status == 0 && fresh.stdout.contains("holds blocks 1...5"), "\(fresh.stdout)\(fresh.stderr)")
        }
    }
}
