#if canImport(Glibc)
import Glibc
#endif

/// Bytes read front to back once: an HTTP body, a decoder's output, a local file.
public protocol ByteStream: AnyObject {
    /// Fills up to `buffer.count` bytes; 0 at the end of the object.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int
}

extension ByteStream {
    /// Writes the rest of the stream to a new file (`O_EXCL`: never over an existing one).
    public func save(to path: String, mode: mode_t, onChunk: (Int) -> Void = { _ in }) throws(LavaError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        if fd < 0 { throw .errno("create", path) }
        try copy(to: FileDescriptor(adopting: fd, displayPath: path), onChunk: onChunk)
    }

    /// Writes the rest of the stream to `file` at its current offset.
    public func copy(to file: borrowing FileDescriptor, onChunk: (Int) -> Void = { _ in }) throws(LavaError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try read(into: buffer)
            if count == 0 { return }
            try file.writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            onChunk(count)
        }
    }
}
