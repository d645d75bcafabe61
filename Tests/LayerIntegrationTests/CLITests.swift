// End-to-end tests of the `layerfs` command-line tool: each runs the built binary on a temp store
// and checks its output and exit code (the table in `layerfs --help`).

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.enabled(if: CLI.binary != nil, "the layerfs executable was not found next to the tests"))
struct CLITests {
    // MARK: Help

    @Test(arguments: ["", "init", "import", "verify", "log", "seal", "status", "show"])
    func helpExitsZero(_ subcommand: String) throws {
        let result = try CLI.run((subcommand.isEmpty ? [] : [subcommand]) + ["--help"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("USAGE: layerfs"))
        #expect(result.stdout.contains("EXAMPLES:"))
        if subcommand.isEmpty {
            for code in ["0 ", "1 ", "64", "65", "66", "73", "74", "75"] {
                #expect(result.stdout.contains("  \(code)"), "exit code \(code) is documented")
            }
        }
    }

    // MARK: Init

    @Test func initPrintsIDPathAndKind() throws {
        try withCLITemporaryDirectory { dir in
            let result = try CLI.run(["init", dir + "/store"])
            #expect(result.status == 0, "\(result.stderr)")
            let store = try Store.open(dir + "/store", mode: .readOnly)
            #expect(result.stdout.contains("created store \(store.storeID)"))
            #expect(result.stdout.contains(dir + "/store"))
            #expect(result.stdout.contains("plain directory (not btrfs): blocks are logical only"))
        }
    }

    @Test func initOnANonEmptyDirectoryExits73() throws {
        try withCLITemporaryDirectory { dir in
            try Tree.write(dir + "/file", "x")
            let result = try CLI.run(["init", dir])
            #expect(result.status == 73)
            #expect(result.stderr.hasPrefix("layerfs: "))
            #expect(result.stderr.contains("not empty"))
        }
    }

    @Test func aMissingStoreExits66() throws {
        try withCLITemporaryDirectory { dir in
            for command in [["verify"], ["status"], ["log"], ["seal"], ["show", "--seq", "0"]] {
                let result = try CLI.run([command[0], dir + "/nothing"] + command.dropFirst())
                #expect(result.status == 66, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("not a layerfs store"))
            }
        }
    }

    // MARK: Import, log, show

    @Test func importLifecycle() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            let binary = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7) }  // NULs and non-UTF-8
            let big = (0..<(100 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            try Tree.mkdir(src)
            try Tree.mkdir(src + "/etc")
            try Tree.mkdir(src + "/etc/conf.d", mode: 0o750)
            try Tree.write(src + "/etc/hosts", "127.0.0.1 localhost\n")
            try Tree.write(src + "/etc/conf.d/net", "eth0 dhcp\n", mode: 0o600)
            try Tree.symlink(src + "/etc/localtime", to: "/usr/share/zoneinfo/UTC")
            try Tree.write(src + "/blob.bin", binary)
            try Tree.write(src + "/big.dat", big)

            let first = try CLI.run(["import", store, src])
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("7 events"), "\(first.stdout)")
            #expect(first.stdout.contains("7 created, 0 changed, 0 removed, 0 unchanged, 0 skipped"))
            #expect(first.stderr.isEmpty, "no progress bar when stderr is not a terminal: \(first.stderr)")

            let log1 = try CLI.run(["log", store])
            #expect(log1.status == 0)
            #expect(log1.stdoutLines.dropFirst().map(logColumns) == [
                "1 write /big.dat size 102400 mode 0644 object \(SHA256.hash(big).hex.prefix(12))",
                "2 write /blob.bin size 1024 mode 0644",
                "3 mkdir /etc mode 0755",
                "4 mkdir /etc/conf.d mode 0750",
                "5 write /etc/conf.d/net size 10 mode 0600",
                "6 write /etc/hosts size 20 mode 0644",
                "7 symlink /etc/localtime -> /usr/share/zoneinfo/UTC",
            ], "\(log1.stdout)")
            #expect(log1.stdoutLines.first?.contains("genesis  store ") == true)
            let me = "by uid \(getuid()) (layerfs) pid "
            #expect(log1.stdoutLines.dropFirst().allSatisfy { $0.contains(me) }, "\(log1.stdout)")

            // The same tree again: nothing to do.
            let again = try CLI.run(["import", store, src])
            #expect(again.status == 0)
            #expect(again.stdout.contains("0 events"))
            #expect(again.stdout.contains("0 created, 0 changed, 0 removed, 7 unchanged"))
            #expect(try CLI.run(["log", store]).stdoutLines.count == 8)

            // Change, remove, add, chmod, retarget, replace a file by a directory.
            try Tree.write(src + "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
            try Tree.remove(src + "/etc/conf.d")
            try Tree.write(src + "/etc/motd", "hello\n")
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: src + "/blob.bin")
            try Tree.remove(src + "/etc/localtime")
            try Tree.symlink(src + "/etc/localtime", to: "/usr/share/zoneinfo/Europe/Paris")
            try Tree.remove(src + "/big.dat")
            try Tree.mkdir(src + "/big.dat")

            let dry = try CLI.run(["import", store, src, "--dry-run"])
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("would commit 9 events"), "\(dry.stdout)")
            #expect(try CLI.run(["log", store]).stdoutLines.count == 8, "a dry run commits nothing")

            let third = try CLI.run(["import", store, src])
            #expect(third.status == 0, "\(third.stderr)")
            #expect(third.stdout.contains("9 events (events 8...16)"), "\(third.stdout)")
            #expect(third.stdout.contains("1 created, 4 changed, 2 removed, 1 unchanged, 0 skipped"), "\(third.stdout)")
            let log3 = try CLI.run(["log", store])
            // Pre-order, parents before children; within a directory, what DIR has (in name order)
            // and then what it no longer has, deepest first.
            #expect(Array(log3.stdoutLines.dropFirst(8)).map(logColumns) == [
                "8 unlink /big.dat",
                "9 mkdir /big.dat mode 0755",
                "10 chmod /blob.bin mode 0600",
                "11 write /etc/hosts size 34 mode 0644",
                "12 unlink /etc/localtime",
                "13 symlink /etc/localtime -> /usr/share/zoneinfo/Europe/Paris",
                "14 write /etc/motd size 6 mode 0644",
                "15 unlink /etc/conf.d/net",
                "16 rmdir /etc/conf.d",
            ], "\(log3.stdout)")

            // --path: events touching /etc/conf.d or below.
            let filtered = try CLI.run(["log", store, "--path", "/etc/conf.d"])
            #expect(filtered.stdoutLines.map { $0.split(separator: " ").first.map(String.init) ?? "" } == ["4", "5", "15", "16"])
            // --json: the exact lines of events.jsonl.
            let json = try CLI.run(["log", store, "--json", "--path", "/etc/hosts"])
            let logLines = try String(contentsOfFile: store + "/events.jsonl", encoding: .utf8)
                .split(separator: "\n").map(String.init)
            #expect(json.stdoutLines == [logLines[6], logLines[11]])

            // Old states.
            let oldHosts = try CLI.run(["show", store, "--seq", "7", "/etc/hosts"])
            #expect(oldHosts.status == 0)
            #expect(oldHosts.stdout == "127.0.0.1 localhost\n")
            #expect(try CLI.run(["show", store, "--seq", "16", "/etc/hosts"]).stdout == "127.0.0.1 localhost\n::1 localhost\n")
            #expect(try CLI.run(["show", store, "--seq", "7", "/big.dat"]).stdoutBytes == big)
            #expect(try CLI.run(["show", store, "--seq", "7", "/blob.bin"]).stdoutBytes == binary)
            #expect(try CLI.run(["show", store, "--seq", "7", "/etc/localtime"]).stdout == "/usr/share/zoneinfo/UTC\n")
            let gone = try CLI.run(["show", store, "--seq", "16", "/etc/conf.d/net"])
            #expect(gone.status == 1)
            #expect(gone.stderr.contains("/etc/conf.d/net"))
            #expect(gone.stderr.contains("no such file or directory"))

            let listing = try CLI.run(["show", store, "--seq", "7", "/etc"])
            #expect(listing.status == 0)
            let rows = listing.stdoutLines
            #expect(rows.count == 3)
            let uid = getuid(), gid = getgid()
            #expect(rows[0].hasPrefix("drwxr-x--- \(uid) \(gid)"), "\(rows)")
            #expect(rows[0].hasSuffix(" conf.d"))
            #expect(rows[1].hasPrefix("-rw-r--r-- \(uid) \(gid)"))
            #expect(rows[1].hasSuffix(" hosts"))
            #expect(rows[2].hasPrefix("lrwxrwxrwx"))
            #expect(rows[2].hasSuffix(" localtime -> /usr/share/zoneinfo/UTC"))
            let hostsTime = try Store.open(store, mode: .readOnly).time(ofSequence: 6)
            #expect(rows[1].contains(" 20 \(hostsTime.canonical) hosts"))

            let verify = try CLI.run(["verify", store])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdoutLines.last == "OK")
            #expect(verify.stdout.contains("events     17 (0...16)"))
        }
    }

    @Test func skippedEntriesAreListedAndExit1() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            try Tree.mkdir(src)
            try Tree.write(src + "/ok", "fine\n")
            try Tree.write(src + "/@reserved", "no\n")
            try Tree.mkdir(src + "/sub")
            try Tree.write(src + "/sub/@fine-below-the-root", "yes\n")
            #expect(mkfifo(src + "/pipe", 0o644) == 0)
            let result = try CLI.run(["import", store, src])
            #expect(result.status == 1)
            #expect(result.stdout.contains("3 created, 0 changed, 0 removed, 0 unchanged, 2 skipped"), "\(result.stdout)")
            #expect(result.stderr.contains("skipped 2 entries"))
            #expect(result.stderr.contains(src + "/@reserved: names starting with '@' at the root are reserved"))
            #expect(result.stderr.contains(src + "/pipe: a FIFO"))
            // Nothing else to do the second time, but the same entries are skipped again.
            let again = try CLI.run(["import", store, src])
            #expect(again.status == 1)
            #expect(again.stdout.contains("0 events"))
        }
    }

    @Test func importOfAMissingDirectoryExits66() throws {
        try withCLITemporaryDirectory { dir in
            #expect(try CLI.run(["init", dir + "/store"]).status == 0)
            let result = try CLI.run(["import", dir + "/store", dir + "/nope"])
            #expect(result.status == 66)
            #expect(result.stderr.contains(dir + "/nope"))
        }
    }

    // MARK: Time forms

    @Test func showAtEveryAcceptedTimeForm() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            try Tree.mkdir(src)
            try Tree.write(src + "/f", "v1\n")
            #expect(try CLI.run(["import", store, src]).status == 0)
            usleep(1_200_000)  // so that whole-second forms can tell the two versions apart
            try Tree.write(src + "/f", "v2\n")
            #expect(try CLI.run(["import", store, src]).status == 0)

            let opened = try Store.open(store, mode: .readOnly)
            let t1 = try opened.time(ofSequence: 1)
            let t2 = try opened.time(ofSequence: 2)
            #expect(t2.nanoseconds - t1.nanoseconds > 1_000_000_000)
            // The next whole second at or after t1: still before t2.
            let ceil1 = Timestamp(nanoseconds: (t1.nanoseconds + 999_999_999) / 1_000_000_000 * 1_000_000_000)
            let future = Timestamp(nanoseconds: Timestamp.now().nanoseconds + 86_400 * 1_000_000_000)

            let atV1 = [
                t1.canonical,
                rfc3339(t1, fraction: true, offsetMinutes: 60),
                rfc3339(t1, fraction: true, offsetMinutes: -150, separator: " "),
                rfc3339(ceil1, fraction: false, offsetMinutes: 0),
                rfc3339(ceil1, fraction: false, offsetMinutes: nil),
                rfc3339(ceil1, fraction: false, offsetMinutes: 0, separator: "t").replacingOccurrences(of: "Z", with: "z"),
                "\(t1.seconds).\(String(format: "%09lld", t1.subsecondNanoseconds))",
                "@\(ceil1.seconds)",
            ]
            for form in atV1 {
                let result = try CLI.run(["show", store, "--at", form, "/f"])
                #expect(result.status == 0, "\(form): \(result.stderr)")
                #expect(result.stdout == "v1\n", "\(form)")
            }
            let c = future.civil
            let atV2 = [
                String(format: "%04d-%02d-%02d", c.year, c.month, c.day),
                String(format: "%04d-%02d-%02d %02d:%02d", c.year, c.month, c.day, c.hour, c.minute),
                String(format: "%04d-%02d-%02dT%02d:%02d+02:00", c.year, c.month, c.day, c.hour, c.minute),
                "@\(future.seconds)",
                "\(future.seconds)",
            ]
            for form in atV2 {
                let result = try CLI.run(["show", store, "--at", form, "/f"])
                #expect(result.status == 0, "\(form): \(result.stderr)")
                #expect(result.stdout == "v2\n", "\(form)")
            }

            let early = try CLI.run(["show", store, "--at", "2000-01-01", "/f"])
            #expect(early.status == 1)
            #expect(early.stderr.contains("is before the store's first event"), "\(early.stderr)")

            // --since / --until select by time, inclusive.
            let since = try CLI.run(["log", store, "--since", t2.canonical])
            #expect(since.stdoutLines.map(logColumns) == ["2 write /f size 3 mode 0644"])
            let until = try CLI.run(["log", store, "--until", t1.canonical])
            #expect(until.stdoutLines.count == 2)
        }
    }

    @Test(arguments: [["show", "--at", "yesterday"], ["show", "--at", "2026-13-01"], ["log", "--since", "2026-11-21T25:00"]])
    func aBadTimeExits64AndListsTheAcceptedForms(_ command: [String]) throws {
        try withCLITemporaryDirectory { dir in
            #expect(try CLI.run(["init", dir + "/store"]).status == 0)
            let result = try CLI.run([command[0], dir + "/store"] + command.dropFirst())
            #expect(result.status == 64)
            #expect(result.stderr.hasPrefix("layerfs: \(command[1]): bad time"), "\(result.stderr)")
            #expect(result.stderr.contains(TimeExpression.acceptedForms))
        }
    }

    @Test func showNeedsExactlyOneOfAtAndSeq() throws {
        try withCLITemporaryDirectory { dir in
            #expect(try CLI.run(["init", dir + "/store"]).status == 0)
            #expect(try CLI.run(["show", dir + "/store"]).status == 64)
            #expect(try CLI.run(["show", dir + "/store", "--seq", "0", "--at", "2026-01-01"]).status == 64)
            let empty = try CLI.run(["show", dir + "/store", "--seq", "0"])
            #expect(empty.status == 0)
            #expect(empty.stdout.isEmpty)
            let past = try CLI.run(["show", dir + "/store", "--seq", "5"])
            #expect(past.status == 1)
            #expect(past.stderr.contains("event 5 does not exist"))
        }
    }

    // MARK: Verify

    @Test func verifyNamesTheTamperedEvent() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            try Tree.mkdir(src)
            for name in ["a", "b", "c", "d"] { try Tree.write(src + "/" + name, "content of \(name)\n") }
            #expect(try CLI.run(["import", store, src]).status == 0)
            #expect(try CLI.run(["verify", store]).status == 0)

            // Flip one bit of one byte of line 3 (event 2: the write of /b), inside its text.
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: store + "/events.jsonl")))
            let newlines = bytes.indices.filter { bytes[$0] == UInt8(ascii: "\n") }
            let line3 = (newlines[1] + 1)..<newlines[2]
            let marker = Array(#""text":"content"#.utf8)
            let start = try #require(line3.first { Array(bytes[$0..<min($0 + marker.count, line3.upperBound)]) == marker })
            bytes[start + 9] ^= 0x01  // "content" -> "dontent"
            try Data(bytes).write(to: URL(fileURLWithPath: store + "/events.jsonl"))

            let result = try CLI.run(["verify", store])
            #expect(result.status == 65)
            #expect(result.stderr.hasPrefix("layerfs: verify failed: "), "\(result.stderr)")
            #expect(result.stderr.contains("event 2"), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
            // Every other command refuses the damaged store the same way.
            #expect(try CLI.run(["status", store]).status == 65)
        }
    }

    // MARK: Writers, status, seal

    @Test func aSecondWriterIsRefusedWithTheHolderNamed() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            try Tree.mkdir(src)
            try Tree.write(src + "/f", "x\n")

            let holder = try Store.open(store, options: .init(sealPolicy: .manual))
            defer { try? holder.close() }
            let result = try CLI.run(["import", store, src])
            #expect(result.status == 75)
            #expect(result.stderr.contains("pid \(getpid())"), "\(result.stderr)")
            #expect(result.stderr.contains("store \(store)"), "\(result.stderr)")
            #expect(try CLI.run(["seal", store]).status == 75)

            // Readers are not blocked.
            let status = try CLI.run(["status", store])
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("writer     held by pid \(getpid())"), "\(status.stdout)")
            #expect(try CLI.run(["verify", store]).status == 0)
            #expect(try CLI.run(["log", store]).status == 0)
        }
    }

    @Test func statusOfAPlainDirectoryStore() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store"
            #expect(try CLI.run(["init", store]).status == 0)
            let result = try CLI.run(["status", store])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("not btrfs: blocks are logical only (no snapshots)"))
            #expect(result.stdout.contains("events     1 (head is event 0)"))
            #expect(result.stdout.contains("blocks     none"))
            #expect(result.stdout.contains("unsealed   1 event"))
            #expect(result.stdout.contains("writer     none"))
            #expect(result.stdout.contains("objects/ 0 bytes in 0 blobs"))
        }
    }

    @Test func sealPrintsABlockThenNothingToSeal() throws {
        try withCLITemporaryDirectory { dir in
            let store = dir + "/store", src = dir + "/src"
            #expect(try CLI.run(["init", store]).status == 0)
            try Tree.mkdir(src)
            try Tree.write(src + "/f", "x\n")
            #expect(try CLI.run(["import", store, src]).status == 0)

            let first = try CLI.run(["seal", store])
            #expect(first.status == 0, "\(first.stderr)")
            let header = try #require(try Store.open(store, mode: .readOnly).blocks.first)
            #expect(first.stdoutLines.first == "sealed block 1")
            #expect(first.stdout.contains("events       0...1 (2)"))
            #expect(first.stdout.contains("merkle root  \(header.merkleRoot.hex)"))
            #expect(first.stdout.contains("hash         \(header.hash.hex)"))
            #expect(first.stdout.contains("none: not btrfs"))

            let second = try CLI.run(["seal", store])
            #expect(second.status == 0)
            #expect(second.stdout.hasPrefix("nothing to seal"))
            #expect(try Store.open(store, mode: .readOnly).blocks.count == 1, "closing did not seal again")
        }
    }

    // MARK: btrfs

    @Test(.enabled(if: loopBtrfsUnavailableReason == nil, "needs root and loop devices"))
    func btrfsSnapshotsAreSealedReportedAndVerified() throws {
        try withLoopBtrfs { mount in
            let store = mount + "/store", src = mount + "/src"
            let created = try CLI.run(["init", store])
            #expect(created.status == 0)
            #expect(created.stdout.contains("btrfs subvolume"))
            try Tree.mkdir(src)
            try Tree.write(src + "/f", "x\n")
            #expect(try CLI.run(["import", store, src]).status == 0)
            let sealed = try CLI.run(["seal", store])
            #expect(sealed.status == 0, "\(sealed.stderr)")
            let header = try #require(try Store.open(store, mode: .readOnly).blocks.first)
            let snapshot = store + "/.snapshots/" + header.snapshotName
            #expect(sealed.stdout.contains("snapshot     \(snapshot)"))
            #expect(try CLI.run(["status", store]).stdout.contains("subvolume with 1 snapshot in .snapshots/"))
            #expect(try CLI.run(["verify", store]).status == 0)

            let delete = Process()
            delete.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            delete.arguments = ["btrfs", "-q", "subvolume", "delete", snapshot]
            try delete.run()
            delete.waitUntilExit()
            try #require(delete.terminationStatus == 0)
            let broken = try CLI.run(["verify", store])
            #expect(broken.status == 65)
            #expect(broken.stderr.contains("block 1: snapshot \(snapshot) is missing"), "\(broken.stderr)")
        }
    }
}

/// RFC 3339 text of `t` shown at a UTC offset (nil: no offset written, meaning UTC).
private func rfc3339(_ t: Timestamp, fraction: Bool, offsetMinutes: Int?, separator: String = "T") -> String {
    let shifted = Timestamp(nanoseconds: t.nanoseconds + Int64(offsetMinutes ?? 0) * 60 * 1_000_000_000)
    let c = shifted.civil
    var text = String(format: "%04d-%02d-%02d", c.year, c.month, c.day) + separator
        + String(format: "%02d:%02d:%02d", c.hour, c.minute, c.second)
    if fraction { text += String(format: ".%09d", c.nanosecond) }
    guard let offsetMinutes else { return text }
    if offsetMinutes == 0 { return text + "Z" }
    let magnitude = abs(offsetMinutes)
    return text + (offsetMinutes > 0 ? "+" : "-") + String(format: "%02d:%02d", magnitude / 60, magnitude % 60)
}
