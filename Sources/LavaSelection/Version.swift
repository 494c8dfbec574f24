/// A lava version: numeric components compared as numbers (8.10.0 > 8.9.3), then an optional
/// pre-release suffix (`8.2.0rc1`), which sorts before the release it precedes.
public struct LavaVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String
    public let components: [Int]
    public let suffix: String

    public init?(_ text: String) {
        var components = [Int]()
        var current = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character.isASCII, character.isNumber {
                current.append(character)
            } else if character == "." && !current.isEmpty {
                guard let value = Int(current), current.count <= 9 else { return nil }
                components.append(value)
                current = ""
            } else {
                break
            }
            index = text.index(after: index)
        }
        guard !current.isEmpty, current.count <= 9, let last = Int(current) else { return nil }
        components.append(last)
        let suffix = String(text[index...])
        // A suffix is letters then letters, digits or dots (`rc1`, `b2`, `dev3`).
        if let first = suffix.first {
            guard first.isASCII, first.isLetter,
                  suffix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") }) else { return nil }
        }
        self.text = text
        self.components = components
        self.suffix = suffix
    }

    /// A release is exactly `N.N.N` with no suffix; only releases are chosen when unpinned.
    public var isRelease: Bool { components.count == 3 && suffix.isEmpty }

    /// The major.minor pair, for rules such as "versions < 8.0 install with install.sh".
    public func isOlder(than major: Int, _ minor: Int) -> Bool {
        let own = (components.first ?? 0, components.count > 1 ? components[1] : 0)
        return own < (major, minor)
    }

    public var description: String { text }

    public static func < (lhs: LavaVersion, rhs: LavaVersion) -> Bool {
        let count = max(lhs.components.count, rhs.components.count)
        for index in 0..<count {
            let left = index < lhs.components.count ? lhs.components[index] : 0
            let right = index < rhs.components.count ? rhs.components[index] : 0
            if left != right { return left < right }
        }
        if lhs.suffix.isEmpty != rhs.suffix.isEmpty { return !lhs.suffix.isEmpty }
        if lhs.suffix != rhs.suffix { return naturalLess(lhs.suffix, rhs.suffix) }
        return lhs.components.count < rhs.components.count
    }

    /// `rc2` < `rc10`: runs of digits compare as numbers.
    static func naturalLess(_ a: String, _ b: String) -> Bool {
        func chunks(_ s: String) -> [(isNumber: Bool, text: String)] {
            var out = [(Bool, String)]()
            for character in s {
                let isDigit = character.isNumber
                if let last = out.last, last.0 == isDigit {
                    out[out.count - 1].1.append(character)
                } else {
                    out.append((isDigit, String(character)))
                }
            }
            return out
        }
        let left = chunks(a), right = chunks(b)
        for (l, r) in zip(left, right) where l.text != r.text {
            if l.isNumber && r.isNumber, let x = Int(l.text), let y = Int(r.text), x != y { return x < y }
            return l.text < r.text
        }
        return left.count < right.count
    }
}
