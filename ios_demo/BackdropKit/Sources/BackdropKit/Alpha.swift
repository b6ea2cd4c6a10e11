// From the frame-sized person probability to what the app composites with, bit for bit the
// Python reference backdrop/core/alpha.py (its docstring has the order of operations):
//   binary   p >= float32(threshold)
//   feather  alpha = floor(clamp((p - lo) / (hi - lo), 0, 1) * 255 + 0.5), float32 throughout,
//            each operation rounded on its own (no fused multiply-add, as in Resize.swift)
import Foundation

/// alpha.py DEFAULT_FEATHER: half-width of the default feather band around the threshold.
public let defaultFeather = 0.2

/// 1 where `p >= threshold`, else 0 (alpha.py `binary_mask`).
/// - Throws: `PreprocessError` for a threshold outside [0, 1].
public func binaryMask(_ mask: [Float], threshold: Float) throws -> [UInt8] {
    if !(threshold >= 0 && threshold <= 1) {
        throw PreprocessError("threshold \(threshold) is not within [0, 1]; the manifest's `threshold` is")
    }
    return mask.map { $0 >= threshold ? 1 : 0 }
}

/// The band `threshold -/+ halfWidth`, computed in double as alpha.py `feather_band` does, then
/// rounded to float32 as `feather_alpha` takes it.
public func featherBand(threshold: Double, halfWidth: Double = defaultFeather) -> (low: Float, high: Float) {
    (Float(threshold - halfWidth), Float(threshold + halfWidth))
}

/// Alpha 0..255: 0 at `p <= low`, 255 at `p >= high` (alpha.py `feather_alpha`). A NaN
/// probability gives 0.
/// - Throws: `PreprocessError` unless `low < high`.
public func featherAlpha(_ mask: [Float], low: Float, high: Float) throws -> [UInt8] {
    if !(low < high) { throw PreprocessError("a feather band needs low < high; got low=\(low), high=\(high)") }
    let width = high - low
    return mask.map { p in
        let shifted = p - low
        let ratio = shifted / width
        let t = min(max(ratio, 0), 1)
        if t.isNaN { return 0 }
        let scaled = t * 255
        let rounded = scaled + 0.5
        return UInt8(rounded.rounded(.down))
    }
}
