import LavaSystem

/// `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`/`AWS_CONFIG_FILE`),
/// merged per profile: the credentials file wins for the keys it has.
public struct AWSConfigFiles: Sendable {
    /// Profile name → key → value (keys lower-cased).
    public let profiles: [String: [String: String]]
    public let credentialsPath: String
    public let configPath: String

    public init(environment: [String: String]) throws(LavaError) {
        let home = environment["HOME"] ?? "/root"
        credentialsPath = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials"
        configPath = environment["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config"
        var merged = [String: [String: String]]()
        if let text = try Files.readText(configPath) {
            for (section, values) in AWSConfigFiles.parse(text) {
                // In the config file, profiles other than default are `[profile NAME]`.
                let name: String
                if section == "default" { name = "default" }
                else if section.hasPrefix("profile ") { name = String(section.dropFirst(8)).trimmingSpaces }
                else { continue }
                merged[name, default: [:]].merge(values) { old, _ in old }
            }
        }
        if let text = try Files.readText(credentialsPath) {
            for (section, values) in AWSConfigFiles.parse(text) {
                merged[section, default: [:]].merge(values) { _, new in new }
            }
        }
        profiles = merged
    }

    /// INI sections with `key = value` lines; indented lines (nested settings) are passed over.
    static func parse(_ text: String) -> [(String, [String: String])] {
        var sections = [(String, [String: String])]()
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let isIndented = line.first == " " || line.first == "\t"
            let trimmed = String(line).trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") {
                sections.append((String(trimmed.dropFirst().dropLast()).trimmingSpaces, [:]))
                continue
            }
            guard !isIndented, !sections.isEmpty, let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals]).trimmingSpaces.lowercased()
            let value = String(trimmed[trimmed.index(after: equals)...]).trimmingSpaces
            sections[sections.count - 1].1[key] = value
        }
        return sections
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
