/// A bundle name in `_dist_/pkg/<OS>/`:
/// new style `lava-<VERSION>-<OS>-py<PY>-<ARCH>.tar.bz2`, old style `lava-<VERSION>.tar.bz2`.
public struct PackageName: Sendable, Equatable {
    public enum Style: String, Sendable {
        case newStyle = "new"
        case oldStyle = "old"
    }

    public let fileName: String
    public let version: LavaVersion
    public let style: Style
    /// Only new-style names carry a platform.
    public let os: String?
    public let python: String?
    public let arch: String?

    static let suffix = ".tar.bz2"

    public init?(fileName: String) {
        guard fileName.hasPrefix("lava-"), fileName.hasSuffix(PackageName.suffix) else { return nil }
        let stem = fileName.dropFirst("lava-".count).dropLast(PackageName.suffix.count)
        let fields = stem.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard let version = LavaVersion(fields[0]) else { return nil }
        // The OS may itself hold '-' (`opensuse-leap15`): read python and arch from the right.
        if fields.count == 1 {
            style = .oldStyle
            os = nil
            python = nil
            arch = nil
        } else if fields.count >= 4 {
            let os = fields[1..<fields.count - 2].joined(separator: "-")
            let pythonField = fields[fields.count - 2]
            guard !os.isEmpty, !fields[1].isEmpty, pythonField.hasPrefix("py"), let arch = fields.last, !arch.isEmpty else { return nil }
            let python = String(pythonField.dropFirst(2))
            guard PackageName.isPythonVersion(python) else { return nil }
            style = .newStyle
            self.os = os
            self.python = python
            self.arch = arch
        } else {
            return nil
        }
        self.fileName = fileName
        self.version = version
    }

    /// `lava-8.2.0-amzn2023-py3.11-x86_64`: the release directory's name.
    public var stem: String { String(fileName.dropLast(PackageName.suffix.count)) }

    static func isPythonVersion(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    public static func newStyle(version: String, os: String, python: String, arch: String) -> String {
        "lava-\(version)-\(os)-py\(python)-\(arch)\(suffix)"
    }

    public static func oldStyle(version: String) -> String { "lava-\(version)\(suffix)" }
}
