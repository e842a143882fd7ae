// The libFuzzer entry point (the binary's `main` is libFuzzer's): each input goes to the harness
// that `VEZA_FUZZ_TARGET` names (Harness.swift). Inputs a parser refuses are expected; a crash,
// a sanitizer report, a hang or a broken invariant (a `preconditionFailure` below) is a finding.

import Foundation

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    if let directory = ProcessInfo.processInfo.environment["VEZA_FUZZ_WRITE_SEEDS"] {
        Seeds.write(to: directory)
        exit(0)
    }
    _ = Harness.selected
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
    Harness.selected.run(bytes)
    return 0
}
