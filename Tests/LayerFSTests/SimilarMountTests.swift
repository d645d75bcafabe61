// /@similar through real mounts: query directories, their symlinks into /@history, the status
// file, agreement with `layerfs similar`, and the rest of the mount working when the index
// cannot be used.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Config files, two of them bridges; sshd_config changes once.
private func buildConfigStore(_ store: Store) throws {
    for dir in ["/network", "/network/interfaces.d", "/systemd", "/systemd/network", "/ssh"] {
        _ = try store.commit(.mkdir(path: dir), by: tester)
    }
    let files: [(String, String)] = [
        ("/network/interfaces.d/br0.conf", "auto br0\niface br0 inet static\n    bridge_ports eth0 eth1\n    bridge_stp off\n"),
        ("/network/interfaces.d/eth2.conf", "auto eth2\niface eth2 inet dhcp\n"),
        ("/systemd/network/10-br1.netdev", "[NetDev]\nName=br1\nKind=bridge\n"),
        ("/ssh/sshd_config", "PermitRootLogin no\nPort 22\n"),
        ("/resolv.conf", "nameserver 192.0.2.53\nsearch lab.example\n"),
    ]
    for (path, text) in files { _ = try store.commit(.write(path: path, content: Array(text.utf8)), by: tester) }
    _ = try store.commit(.write(path: "/ssh/sshd_config", content: Array("PermitRootLogin prohibit-password\nPort 2222\n".utf8)), by: tester)
}

/// Waits (at most 20 s) until /@similar/.status says ready and nothing is behind.
private func waitUntilIndexed(_ mountPoint: String) throws -> String {
    let deadline = Date().addingTimeInterval(20)
    var status = ""
    while Date() < deadline {
        status = (try? FS.read(mountPoint + "/@similar/.status")) ?? ""
        if status.contains("state      ready") && status.contains("(0 behind)") { return status }
        usleep(50_000)
    }
    throw FixtureError("the index did not become ready: \(status)")
}

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"))
struct SimilarMountTests {
    @Test func queryDirectoriesListMatchesThatReadAsTheVersions() throws {
        try withScratchDirectory { (scratch: String) throws in
            let indexDir = scratch + "/index"
            try withMountedStore(options: ["-o", "index_dir=\(indexDir)"], build: buildConfigStore) { (m: MountedStore, store: Store) throws in
                let status = try waitUntilIndexed(m.mountPoint)
                #expect(status.contains("versions   6"), "\(status)")
                #expect(status.contains("embedder   builtin"), "\(status)")
                #expect(try FS.list(m.mountPoint + "/@similar") == [".status"])

                let query = m.mountPoint + "/@similar/which interfaces are bridges#3"
                let names = try FS.list(query)
                #expect(names.count == 3, "\(names)")
                #expect(names.first?.hasPrefix("01 ") == true)
                let top2 = Set(names.prefix(2).map { String($0.dropFirst(3).split(separator: " ").first ?? "") })
                #expect(top2 == ["network\u{2215}interfaces.d\u{2215}br0.conf", "systemd\u{2215}network\u{2215}10-br1.netdev"], "\(names)")
                // Each entry is a symlink into /@history whose content is exactly that version.
                for name in names {
                    let link = query + "/" + name
                    let target = try FileManager.default.destinationOfSymbolicLink(atPath: link)
                    #expect(target.hasPrefix("../../@history/"), "\(target)")
                    let path = "/" + target.dropFirst("../../@history/".count).split(separator: "/").dropLast().joined(separator: "/")
                    let time = String(target.split(separator: "/").last!)
                    let seq = try store.sequence(at: try #require(Timestamp(canonical: time)))
                    let info = try store.stat(path, at: seq)
                    #expect(try FS.read(link) == String(decoding: try store.read(info), as: UTF8.self), "\(name)")
                }

                // The CLI gives the same matches (the mount maintains the index: read as it is).
                let binary = try #require(LayerFSBinary.path)
                let cli = try runProgram(binary, ["similar", m.storePath, "which interfaces are bridges", "--k", "3", "--json", "--index-dir", indexDir])
                #expect(cli.status == 0, "\(cli.output)")
                let cliPaths = cli.output.split(separator: "\n").compactMap { line -> String? in
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
                    return (object["path"] as? String).map { String($0.dropFirst()).replacingOccurrences(of: "/", with: "\u{2215}") }
                }
                let mountPaths = names.map { String($0.dropFirst(3).split(separator: " ").first ?? "") }
                #expect(cliPaths == mountPaths)

                // Both versions of sshd_config are found; a new version is indexed once written.
                #expect(try FS.list(m.mountPoint + "/@similar/ssh root login").filter { $0.contains("sshd_config") }.count == 2)
                try "PermitRootLogin yes\n".write(toFile: m.mountPoint + "/ssh/sshd_config", atomically: false, encoding: .utf8)
                _ = try waitUntilIndexed(m.mountPoint)
                usleep(2_100_000)  // past the 2 s result cache
                #expect(try FS.list(m.mountPoint + "/@similar/ssh root login").filter { $0.contains("sshd_config") }.count == 3)
            }
        }
    }

    @Test func namesAreEscapedContinuedAndHostileOnesAreENOENT() throws {
        try withScratchDirectory { (scratch: String) throws in
            try withMountedStore(options: ["-o", "index_dir=\(scratch)/index"], build: buildConfigStore) { (m: MountedStore, _: Store) throws in
                _ = try waitUntilIndexed(m.mountPoint)
                let root = m.mountPoint + "/@similar/"
                // '/' as %2F; a query continued in a "+" subdirectory; k as a suffix.
                #expect(try FS.list(root + "network%2Finterfaces.d bridge#2").count == 2)
                #expect(try FS.list(root + "which interfaces/+ are bridges#1").count == 1)
                for hostile in [".hidden", "%zz", "%C3", "a#0", "a#1001", "a#x1", "#5", "   "] {
                    #expect(FS.lstatErrno(root + hostile) == ENOENT, "\(hostile)")
                }
                #expect(FS.lstatErrno(root + "bridge/no such match") == ENOENT)
                // Every query name exists (it is a query): mkdir of one is EEXIST; of a reserved name, EROFS.
                #expect(mkdir(root + "new", 0o755) == -1 && errno == EEXIST)
                #expect(mkdir(root + ".new", 0o755) == -1 && errno == EROFS)
            }
        }
    }

    /// kill -9 in the middle of indexing (MiniLM, slow enough to be caught part way), then the
    /// next command resumes from the last save: the index ends complete and answers as one built
    /// in one go.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/var/lib/layerfs/models/all-MiniLM-L6-v2/model.safetensors")
        || ProcessInfo.processInfo.environment["LAYERFS_MODEL_DIR"] != nil, "needs the MiniLM model: scripts/install-model.sh"))
    func aKilledIndexerResumesAndEndsComplete() throws {
        let binary = try #require(LayerFSBinary.path)
        try withScratchDirectory { (dir: String) throws in
            try Store.create(at: dir + "/store", by: tester)
            do {
                let store = try Store.open(dir + "/store", options: .init(sealPolicy: .manual))
                try buildConfigStore(store)
                for i in 0..<600 {
                    let text = "# host \(i)\nHostname node-\(i).lab\nListenAddress 10.0.\(i / 250).\(i % 250)\nOption value-\(i)\n"
                    _ = try store.commit(.write(path: "/gen-\(i).conf", content: Array(text.utf8)), by: tester)
                }
                try store.close()
            }
            let index = dir + "/index"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["reindex", dir + "/store", "--embedder", "minilm", "--index-dir", index, "--save-interval", "0.2"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Kill it once some progress is saved, long before it is done.
            let deadline = Date().addingTimeInterval(60)
            var saved: UInt64 = 0
            while Date() < deadline, process.isRunning {
                if let data = FileManager.default.contents(atPath: index + "/meta.json"),
                    let meta = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let last = meta["lastSeq"] as? UInt64, last > 0
                {
                    saved = last
                    break
                }
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let head = try Store.open(dir + "/store", mode: .readOnly).headSequence
            try #require(saved > 0 && saved < head, "killed after progress was saved and before the end (saved \(saved) of \(head))")

            // The next command resumes and finishes; the answers equal a build in one go.
            let resumed = try runProgram(binary, ["similar", dir + "/store", "which interfaces are bridges", "--embedder", "minilm", "--index-dir", index, "--json", "--k", "5"])
            #expect(resumed.status == 0, "\(resumed.output)")
            let whole = try runProgram(binary, ["reindex", dir + "/store", "--embedder", "minilm", "--index-dir", dir + "/whole"])
            #expect(whole.status == 0, "\(whole.output)")
            let direct = try runProgram(binary, ["similar", dir + "/store", "which interfaces are bridges", "--embedder", "minilm", "--index-dir", dir + "/whole", "--json", "--k", "5"])
            func paths(_ output: String) -> [String] {
                output.split(separator: "\n").compactMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["path"] as? String
                }
            }
            #expect(paths(resumed.output).prefix(2) == paths(direct.output).prefix(2), "\(resumed.output) vs \(direct.output)")
            #expect(Set(paths(resumed.output).prefix(2)) == ["/network/interfaces.d/br0.conf", "/systemd/network/10-br1.netdev"])
            for meta in [index, dir + "/whole"].compactMap({ FileManager.default.contents(atPath: $0 + "/meta.json") }) {
                let object = try #require(try JSONSerialization.jsonObject(with: meta) as? [String: Any])
                #expect(object["lastSeq"] as? UInt64 == head)
                #expect(object["count"] as? Int == 606)
            }
        }
    }

    @Test func anUnusableIndexFailsQueriesWithEAGAINAndNothingElse() throws {
        // An index directory that cannot be created: the mount works, queries say "try again".
        try withMountedStore(options: ["-o", "index_dir=/proc/layerfs-cannot-be-here"], build: buildConfigStore) { (m: MountedStore, _: Store) throws in
            let deadline = Date().addingTimeInterval(10)
            var status = ""
            while Date() < deadline {
                status = (try? FS.read(m.mountPoint + "/@similar/.status")) ?? ""
                if status.contains("unavailable") || status.contains("building") { break }
                usleep(50_000)
            }
            #expect(status.contains("unavailable") || status.contains("building"), "\(status)")
            #expect(FS.lstatErrno(m.mountPoint + "/@similar/bridge") == EAGAIN)
            #expect(try FS.read(m.mountPoint + "/ssh/sshd_config").contains("2222"))
            try "x\n".write(toFile: m.mountPoint + "/new.txt", atomically: false, encoding: .utf8)
            #expect(try FS.read(m.mountPoint + "/new.txt") == "x\n")
        }
    }
}
