// libFuzzer target: one blocks.jsonl line (a block header, signed or not), without its LF.
import FuzzSupport
import LayerCore

@_cdecl("fuzz_block_header_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzBlockHeader)
}

func fuzzBlockHeader(_ input: [UInt8]) {
    let line = input
    if case .success(let header) = BlockHeader.decode(line: line) {
        // An accepted header is consistent: its count is defined and its name can be made.
        guard header.last >= header.first else { fatalError("accepted a block with last < first: \(header)") }
        _ = header.count
        _ = header.snapshotName
    }
}
