// libFuzzer target: the time expression parser (@time/<t>/, --at T). Any input either parses or
// is rejected with a LayerError; a time it accepts reads back the same from its canonical form.
import FuzzSupport
import LayerCore

@_cdecl("fuzz_time_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzTime)
}

func fuzzTime(_ input: [UInt8]) {
    let text = String(decoding: input, as: UTF8.self)
    guard let time = try? TimeExpression.parse(text) else { return }
    let canonical = time.canonical
    guard let again = try? TimeExpression.parse(canonical), again == time else {
        fatalError("\(text.debugDescription) parses to \(canonical), which does not parse back to the same time")
    }
}
