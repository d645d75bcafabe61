// libFuzzer target: an inclusion proof (layerfs-proof/1, `layerfs verify-proof FILE`, or the
// user.layerfs.proof attribute). Decoding and verifying never crash; an accepted proof re-encodes
// to a proof that decodes to the same value.
import FuzzSupport
import LayerCore

@_cdecl("fuzz_proof_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzProof)
}

func fuzzProof(_ input: [UInt8]) {
    let bytes = input
    guard case .success(let proof) = InclusionProof.decode(bytes) else { return }
    _ = proof.verify(trustedKeys: [])
    guard case .success(let again) = InclusionProof.decode(proof.encoded), again == proof else {
        fatalError("a decoded proof does not round-trip through its encoding")
    }
}
