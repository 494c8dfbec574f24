import Logging

/// The metadata keys every log line may carry (SPEC §11).
public enum LogField {
    public static let realm = "realm"
    public static let worker = "worker"
    public static let component = "component"
    public static let ordered = [component, realm, worker]
}

extension Logger {
    /// The same logger with `component` set, as each part of lava-boot tags its lines.
    public func with(component: String) -> Logger {
        var copy = self
        copy[metadataKey: LogField.component] = "\(component)"
        return copy
    }
}
