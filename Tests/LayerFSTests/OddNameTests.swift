// Odd names looked up in every view, also below the view's root: bytes that are not UTF-8
// (ENOENT: no store path can hold them; creating one is EILSEQ), newlines and control characters, names of NAME_MAX bytes, and the
// @ names in subdirectories (where they are ordinary names, never the views).

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The errno of `lstat` on a path given as raw bytes (so that it may hold invalid UTF-8).
private func lstatErrno(bytes: [UInt8]) -> Int32 {
    var st = stat()
    let cPath = bytes.map { CChar(bitPattern: $0) } + [0]
    return lstat(cPath, &st) == 0 ? 0 : errno
}

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"))
struct OddNameTests {
    @Test func oddNamesInEveryViewAndBelowIt() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let hostsVersion = try canonicalTime(store, try #require(store.history("/etc/hosts").first?.seq))
            // Directories in which a lookup happens: the @ roots, and directories inside views.
            let directories = [
                "", "etc", "@time", "@time/latest", "@time/latest/etc", "@block", "@block/1", "@block/1/etc",
                "@history", "@history/etc", "@history/etc/hosts", "@similar",
            ]
            let invalid: [[UInt8]] = [[0xFF], [0x63, 0x61, 0x66, 0xE9], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], Array("latest".utf8) + [0x80]]
            for directory in directories {
                let base = Array((m.mountPoint + (directory.isEmpty ? "" : "/" + directory) + "/").utf8)
                for name in invalid {
                    #expect(lstatErrno(bytes: base + name) == ENOENT, "\(directory)/\(name)")
                }
                let odd = [
                    "hosts\n", "\nhosts", "a\nb", "latest\n", "1\n", "\r", "\t", "\u{7F}", "\u{1B}[31m",
                    String(repeating: "h", count: 255), "@time", "@block", "@history", "@similar", "@x",
                ]
                // (@similar takes any name as a query: SimilarMountTests covers its malformed names.)
                for name in odd where directory != "@similar" && !(directory.isEmpty && name.hasPrefix("@") && name != "@x") {
                    let path = m.mountPoint + (directory.isEmpty ? "" : "/" + directory) + "/" + name
                    #expect(FS.lstatErrno(path) == ENOENT, "\(directory)/\(name.debugDescription)")
                }
            }
            // The @ names are views only at the root of the mount.
            #expect(FS.lstatErrno(m.mountPoint + "/@time/latest/@time/latest") == ENOENT)
            #expect(FS.lstatErrno(m.mountPoint + "/@history/@history") == ENOENT)
            // Names are exact: no normalisation, no trimming, no case folding.
            #expect(try FS.read("\(m.mountPoint)/@history/etc/hosts/\(hostsVersion)") == "v1\n")
            #expect(FS.lstatErrno("\(m.mountPoint)/@history/etc/hosts/\(hostsVersion.lowercased())") == ENOENT)
            #expect(FS.lstatErrno("\(m.mountPoint)/@history/etc/hosts/\(hostsVersion)\n") == ENOENT)
            #expect(FS.lstatErrno("\(m.mountPoint)/@history/etc/hosts/ \(hostsVersion)") == ENOENT)
            #expect(FS.lstatErrno("\(m.mountPoint)/@history/etc/HOSTS") == ENOENT)
            #expect(m.process.isRunning, "the daemon survived")
        }
    }
}
