// From the frame-sized person probability to what the app composites with, bit for bit the
// Python reference backdrop/core/alpha.py (its docstring has the order of operations):
//   binary   p >= threshold (float32)
//   feather  alpha = floor(clamp((p - lo) / (hi - lo), 0, 1) * 255 + 0.5), float32 throughout
package ai.backdrop.core

/** alpha.py DEFAULT_FEATHER: half-width of the default feather band around the threshold. */
const val DEFAULT_FEATHER = 0.2

/** 1 where p >= threshold, else 0 (alpha.py binary_mask). */
fun binaryMask(mask: FloatArray, threshold: Float): ByteArray {
    if (!(threshold >= 0.0f && threshold <= 1.0f)) throw PreprocessError("threshold $threshold is not within [0, 1]")
    return ByteArray(mask.size) { if (mask[it] >= threshold) 1 else 0 }
}

/** The band threshold -/+ halfWidth, computed in double like alpha.py feather_band, as float32. */
fun featherBand(threshold: Double, halfWidth: Double = DEFAULT_FEATHER): Pair<Float, Float> =
    Pair((threshold - halfWidth).toFloat(), (threshold + halfWidth).toFloat())

/** Alpha 0..255 (as unsigned bytes): 0 at p <= low, 255 at p >= high (alpha.py feather_alpha). */
fun featherAlpha(mask: FloatArray, low: Float, high: Float): ByteArray {
    if (!(low < high)) throw PreprocessError("a feather band needs low < high; got low=$low, high=$high")
    val width = high - low
    return ByteArray(mask.size) {
        val t = minOf(maxOf((mask[it] - low) / width, 0.0f), 1.0f)
        Math.floor((t * 255.0f + 0.5f).toDouble()).toInt().toByte()
    }
}
