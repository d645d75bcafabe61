// libFuzzer target: the name of a /@similar/ query directory (and of a "+..." continuation), as
// the kernel hands it over: any bytes but '/' and NUL, at most 255 of them. (The prefix of a
// continuation is compared as bytes: a decoded combining mark joins the previous part's last
// character, so String.hasPrefix would say no.)
import FuzzSupport
@testable import LayerFS

@_cdecl("fuzz_similar_name_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzSimilarName)
}

func fuzzSimilarName(_ input: [UInt8]) {
    let name = String(decoding: input, as: UTF8.self)
    if let (query, k) = SimilarView.parse(name) {
        guard (1...1000).contains(k), !query.isEmpty else { fatalError("accepted \(name.debugDescription): k \(k), query \(query.debugDescription)") }
    }
    if let (query, k) = SimilarView.parse(name, continuing: "earlier part ") {
        guard (1...1000).contains(k), query.utf8.starts(with: "earlier part ".utf8) else { fatalError("continuation \(name.debugDescription): k \(k)") }
    }
}
