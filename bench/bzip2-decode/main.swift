// bench only: decodes a .bz2 on stdin to stdout with lava-boot's parallel decoder, so
// bench/decoder.sh can time it beside lbzip2 and bzip2. `--threads N` (default: every core).
import LavaBzip2
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

final class StandardInput: ByteStream {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        let n = Files.retryingEINTR { Glibc.read(0, buffer.baseAddress, buffer.count) }
        if n < 0 { throw .errno("read", "stdin") }
        return n
    }
}

var threads: Int? = nil
if let flag = CommandLine.arguments.firstIndex(of: "--threads"), flag + 1 < CommandLine.arguments.count {
    threads = Int(CommandLine.arguments[flag + 1])
}
let decoder = ParallelBzip2Decoder(source: StandardInput(), threads: threads)
let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
do {
    while true {
        let n = try decoder.read(into: buffer)
        if n == 0 { break }
        try FileDescriptor.writeAll(1, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), displayPath: "stdout")
    }
} catch {
    let line = Array("bzip2-decode: \(error.message)\n".utf8)
    line.withUnsafeBytes { _ = try? FileDescriptor.writeAll(2, $0, displayPath: "stderr") }
    exit(1)
}
