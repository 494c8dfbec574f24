// Differential fuzz target: decodes the input with SwiftBlockDecoder and with libbz2 (under the
// wrapper's rules) and traps unless both fail or both give the same bytes.
// fuzz.sh builds it with -DFUZZING, ASan and coverage, linked to libFuzzer's driver; an ordinary
// build replays the files named on the command line (to reproduce a crash without sanitizers).
import LavaBzip2Block
import CBzip2
#if canImport(Glibc)
import Glibc
#endif

/// Inputs whose libbz2 output passes this are skipped: a 100-byte input can expand to ~46 MB per
/// block, and decoding time, not input variety, would then bound the run (the tests cover size).
let outputLimit = 1 << 20
let chunkSize = 64 * 1024

enum Reference { case output([UInt8]), failed(emitted: Int), tooLarge }

/// The most one block can produce: 900k bytes of four equal bytes and a count of 255.
let maxBlockOutput = 900_000 / 5 * 259

/// libbz2's verdict and output.
func libbz2Decode(_ data: UnsafePointer<UInt8>, _ size: Int, _ chunk: UnsafeMutablePointer<UInt8>) -> Reference {
    var strm = bz_stream()
    guard BZ2_bzDecompressInit(&strm, 0, 0) == BZ_OK else { fatalError("BZ2_bzDecompressInit") }
    defer { BZ2_bzDecompressEnd(&strm) }
    strm.next_in = UnsafeMutablePointer(mutating: UnsafeRawPointer(data).assumingMemoryBound(to: CChar.self))
    strm.avail_in = UInt32(size)
    var output: [UInt8] = []
    while true {
        strm.next_out = UnsafeMutableRawPointer(chunk).assumingMemoryBound(to: CChar.self)
        strm.avail_out = UInt32(chunkSize)
        var result: Int32
        repeat {
            let before = (strm.avail_in, strm.avail_out)
            result = BZ2_bzDecompress(&strm)
            if result == BZ_OK && (strm.avail_in, strm.avail_out) == before { result = BZ_DATA_ERROR }
        } while result == BZ_OK && strm.avail_out != 0 && strm.avail_in != 0
        output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: chunkSize - Int(strm.avail_out)))
        if output.count > outputLimit { return .tooLarge }
        if result == BZ_STREAM_END { return strm.avail_in == 0 ? .output(output) : .failed(emitted: output.count) }
        if result != BZ_OK || strm.avail_out != 0 { return .failed(emitted: output.count) }
    }
}

/// One decoder for all inputs, as a worker reuses its decoder.
nonisolated(unsafe) let decoder = SwiftBlockDecoder()  // libFuzzer runs inputs one at a time on one thread

func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: chunkSize)
    defer { chunk.deallocate() }
    let reference = libbz2Decode(data, size, chunk)
    if case .tooLarge = reference { return 0 }

    guard decoder.begin(input: data, count: size) else { fatalError("begin refused") }
    var offset = 0
    // Odd capacities exercise resuming mid-run.
    let capacity = 1 + size % 7 == 1 ? chunkSize : 1 + (size * 7919) % chunkSize
    while true {
        let (produced, step) = decoder.step(into: chunk, capacity: capacity)
        if case .output(let expected) = reference {
            guard offset + produced <= expected.count,
                  expected[offset..<offset + produced].elementsEqual(UnsafeBufferPointer(start: chunk, count: produced))
            else { fatalError("output differs from libbz2 at \(offset)") }
        } else if case .failed(let emitted) = reference, offset > emitted + maxBlockOutput {
            // Where libbz2 fails, the output before the failure is thrown away, and either decoder
            // may notice the problem later than the other, but not more than a block later.
            fatalError("libbz2 fails but SwiftBlockDecoder runs on past \(offset) bytes")
        }
        offset += produced
        switch step {
        case .more: continue
        case .end:
            guard case .output(let expected) = reference, offset == expected.count
            else { fatalError("SwiftBlockDecoder ends where libbz2 fails or gives more") }
            return 0
        case .failed:
            guard case .failed = reference else { fatalError("SwiftBlockDecoder fails where libbz2 succeeds") }
            return 0
        }
    }
}

#if FUZZING
import CLibFuzzer

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    guard let data else { return 0 }
    return fuzzOne(data, size)
})
#else
for path in CommandLine.arguments.dropFirst() {
    guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while case let n = fread(&buffer, 1, buffer.count, file), n > 0 { bytes.append(contentsOf: buffer[0..<n]) }
    fclose(file)
    bytes.append(0)  // a valid pointer for empty files; not passed on
    _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress!, $0.count - 1) }
    print("ok \(path)")
}
#endif
