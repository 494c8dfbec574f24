/// Appends `value` as a JSON string literal (quotes included) to `out`.
public func appendJSONString(_ value: String, to out: inout String) {
    out.append("\"")
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out.append("\\\"")
        case "\\": out.append("\\\\")
        case "\n": out.append("\\n")
        case "\r": out.append("\\r")
        case "\t": out.append("\\t")
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    out.append("\"")
}
