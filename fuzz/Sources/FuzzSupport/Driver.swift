// The entry point of every fuzz target. SwiftPM links an executable with `main` defined as
// `<module>_main` (so that tests can link the executable's module), which leaves libFuzzer's own
// main out: each target defines `<module>_main` with @_cdecl and hands its body to `runFuzzer`,
// which starts libFuzzer through LLVMFuzzerRunDriver (in the libFuzzer runtime that
// -sanitize=fuzzer links; declared by CFuzzDriver).
import CFuzzDriver

nonisolated(unsafe) private var body: ([UInt8]) -> Void = { _ in }

/// Runs libFuzzer with the process's arguments, calling `test` with each input.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ test: @escaping ([UInt8]) -> Void
) -> CInt {
    body = test
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzerTestOneInput(data, size) }
}

/// libFuzzer's callback. Also exported under its usual name, which the libFuzzer runtime's own
/// (unused) main refers to.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    body(size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
