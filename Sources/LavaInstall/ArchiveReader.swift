import CArchive
import LavaBzip2
import LavaSource
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// An archive read once, front to back: a `.tar.bz2` from an object stream (stream → bzip2,
/// blocks decoded on every core → tar, no temporary copy; `onRead` sees every compressed chunk,
/// for progress), or a `.zip` from a file (its central directory, where symlinks are marked,
/// sits at the end). Entries go through `SafeExtractor` either way.
final class ArchiveReader {
    let archive: OpaquePointer
    private let source: StreamSource?
    let displayName: String
    private let formatHint: String

    init(stream: any ByteStream, displayName: String, onRead: @escaping (Int) -> Void) throws(LavaError) {
        guard let archive = archive_read_new() else { throw LavaError(.install, "libarchive: out of memory") }
        self.archive = archive
        self.displayName = displayName
        formatHint = "is it a complete .tar.bz2?"
        let source = StreamSource(stream: ParallelBzip2Decoder(source: stream, onCompressedBytes: onRead))
        self.source = source
        archive_read_support_format_tar(archive)
        let opened = archive_read_open(archive, Unmanaged.passUnretained(source).toOpaque(), nil, { archive, context, buffer in
            let source = Unmanaged<StreamSource>.fromOpaque(context!).takeUnretainedValue()
            return source.fill(buffer!)
        }, nil)
        if opened != ARCHIVE_OK { throw failure("cannot read") }
    }

    /// A zip file open at `descriptor` (seekable; the caller keeps it open while reading).
    init(zipFile descriptor: Int32, displayName: String) throws(LavaError) {
        guard let archive = archive_read_new() else { throw LavaError(.install, "libarchive: out of memory") }
        self.archive = archive
        self.displayName = displayName
        formatHint = "is it a complete .zip?"
        source = nil
        archive_read_support_format_zip_seekable(archive)
        if archive_read_open_fd(archive, descriptor, 1 << 20) != ARCHIVE_OK { throw failure("cannot read") }
    }

    deinit { archive_read_free(archive) }

    /// How long extraction waited for decoded input (zero for a zip, read from a file).
    var waitingSeconds: Double { source?.waitingSeconds ?? 0 }

    /// The next entry, or nil at the end of the archive.
    func nextEntry() throws(LavaError) -> OpaquePointer? {
        var entry: OpaquePointer? = nil
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw failure("cannot read") }
        return entry
    }

    /// Calls `body` with each data block of the current entry and its offset (sparse files skip).
    func readData(_ body: (UnsafeRawBufferPointer, Int64) throws(LavaError) -> Void) throws(LavaError) {
        var block: UnsafeRawPointer? = nil
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw failure("cannot read") }
            try body(UnsafeRawBufferPointer(start: block, count: size), offset)
        }
    }

    /// The stream's own error when it failed, else libarchive's (a corrupt bzip2 stream, say).
    func failure(_ what: String) -> LavaError {
        if let error = source?.error { return error.prefixed("\(what) \(displayName)") }
        let reason = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return LavaError(.install, "\(what) \(displayName): \(reason) (\(formatHint))")
    }
}

/// libarchive's read callback target; libarchive holds an unretained pointer to it.
private final class StreamSource {
    let stream: any ByteStream
    var error: LavaError?
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)

    init(stream: any ByteStream) {
        self.stream = stream
    }

    deinit { buffer.deallocate() }

    /// Time spent waiting for the stream (the decoders, the download) rather than writing files.
    var waitingSeconds = 0.0

    func fill(_ out: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        let start = Clock.monotonicSeconds()
        defer { waitingSeconds += Clock.monotonicSeconds() - start }
        do {
            let count = try stream.read(into: buffer)
            out.pointee = UnsafeRawPointer(buffer.baseAddress)
            return count
        } catch {
            self.error = error
            return -1
        }
    }
}

extension OpaquePointer {
    /// An archive entry's path as raw text, or nil when it is not valid UTF-8.
    var entryPathname: String? { archive_entry_pathname(self).flatMap { String(validatingCString: $0) } }
}
