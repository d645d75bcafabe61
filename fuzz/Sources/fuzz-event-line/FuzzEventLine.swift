// libFuzzer target: one events.jsonl line (without its LF). The fast canonical decoder must give
// exactly the reference decoder's result (the event, or the same problem and partial event).
import FuzzSupport
@testable import LayerCore

@_cdecl("fuzz_event_line_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzEventLine)
}

func fuzzEventLine(_ input: [UInt8]) {
    let line = input
    let decoded = EventCodec.decode(line: line)
    line.withUnsafeBytes { raw in
        var referencePartial: Event?, fastPartial: Event?
        let reference = EventCodec.decodeReference(line: raw, partial: &referencePartial)
        let fast = EventCodec.decode(line: raw, partial: &fastPartial)
        guard fast == reference, decoded == reference else {
            fatalError("decoders disagree: fast \(fast), public \(decoded), reference \(reference)")
        }
        if case .failure = reference, fastPartial != referencePartial {
            fatalError("decoders disagree on the partial event")
        }
        if case .success(let event) = reference {
            var copy = event
            let again = EventCodec.seal(&copy)
            guard Array(again.dropLast()) == line else { fatalError("an accepted line does not re-encode to itself") }
        }
    }
}
