// libFuzzer target: the replication stream's JSON lines (header, per-block trailer, end), which
// `layerfs receive` reads from a possibly hostile sender. An accepted line re-encodes to itself.
import FuzzSupport
import LayerCore

@_cdecl("fuzz_stream_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzStream)
}

func fuzzStream(_ input: [UInt8]) {
    let line = input
    if let header = ReplicationStream.decodeHeader(line) {
        guard Array(ReplicationStream.encode(header).dropLast()) == line else { fatalError("header does not re-encode") }
    }
    if let trailer = ReplicationStream.decodeTrailer(line) {
        guard Array(ReplicationStream.encode(trailer).dropLast()) == line else { fatalError("trailer does not re-encode") }
    }
    if let count = ReplicationStream.decodeEnd(line) {
        guard Array(ReplicationStream.encodeEnd(blocks: count).dropLast()) == line else { fatalError("end does not re-encode") }
    }
}
