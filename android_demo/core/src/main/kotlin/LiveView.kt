// What the demo app's live view does with a camera frame besides running the model, so that the
// app only moves pixels between CameraX, the runtime and a Bitmap:
//
//   toYuv444(frame) --yuvToArgb--> the picture (frames.py yuv_to_rgb's integer rule, previews only)
//   background: blurBackground (block mean + box blur + nearest upscale) or a replacement picture
//   composite(picture, background, featherAlpha(mask, lo, hi)) --mirrorRows (front camera)--> screen
//
// plus [LatencyMeter] (frames per second and the median per stage over the last frames) and
// [CameraChange] (the stream's state is reset when the camera, the rotation or the frame size changes).
package ai.backdrop.core

private const val YUV_SCALE = 1_000_000

private fun clampByte(v: Int): Int = if (v < 0) 0 else if (v > 255) 255 else v

/**
 * uint8 (height, width, 3) Y, Cb, Cr full range -> opaque ARGB ints: R = Y + 1.402 Cr',
 * G = Y - 0.344136 Cb' - 0.714136 Cr', B = Y + 1.772 Cb' (C' = C - 128) in integers, rounded half
 * up and clipped (frames.py yuv_to_rgb, docs/frames.md "Colour").
 */
fun yuvToArgb(yuv444: ByteArray, width: Int, height: Int, out: IntArray = IntArray(width * height)): IntArray {
    val n = width * height
    if (yuv444.size != n * 3) throw PreprocessError("yuvToArgb: ${yuv444.size} bytes are not $height x $width x 3")
    if (out.size != n) throw PreprocessError("yuvToArgb: the output has ${out.size} pixels, not $n")
    for (i in 0 until n) {
        val y = (yuv444[3 * i].toInt() and 0xff) * YUV_SCALE
        val cb = (yuv444[3 * i + 1].toInt() and 0xff) - 128
        val cr = (yuv444[3 * i + 2].toInt() and 0xff) - 128
        val r = clampByte(Math.floorDiv(2 * (y + 1_402_000 * cr) + YUV_SCALE, 2 * YUV_SCALE))
        val g = clampByte(Math.floorDiv(2 * (y - 344_136 * cb - 714_136 * cr) + YUV_SCALE, 2 * YUV_SCALE))
        val b = clampByte(Math.floorDiv(2 * (y + 1_772_000 * cb) + YUV_SCALE, 2 * YUV_SCALE))
        out[i] = (0xff shl 24) or (r shl 16) or (g shl 8) or b
    }
    return out
}

/**
 * A blurred copy of an ARGB picture for the blur effect: means of factor x factor blocks, a box
 * blur of [radius] blocks over them (rows, then columns), scaled back up by nearest neighbour.
 */
fun blurBackground(argb: IntArray, width: Int, height: Int, factor: Int = 8, radius: Int = 2): IntArray {
    if (argb.size != width * height) throw PreprocessError("blurBackground: ${argb.size} pixels are not $width x $height")
    if (factor < 1 || radius < 0) throw PreprocessError("blurBackground needs factor >= 1 and radius >= 0")
    val sw = (width + factor - 1) / factor
    val sh = (height + factor - 1) / factor
    val small = Array(3) { IntArray(sw * sh) }
    val count = IntArray(sw * sh)
    for (y in 0 until height) {
        for (x in 0 until width) {
            val p = argb[y * width + x]
            val s = (y / factor) * sw + x / factor
            small[0][s] += (p shr 16) and 0xff
            small[1][s] += (p shr 8) and 0xff
            small[2][s] += p and 0xff
            count[s]++
        }
    }
    for (c in 0 until 3) for (s in 0 until sw * sh) small[c][s] = small[c][s] / count[s]
    fun box(src: IntArray, along: Int, across: Int, stride: Int, step: Int): IntArray {
        val out = IntArray(src.size)
        for (j in 0 until across) {
            for (i in 0 until along) {
                var sum = 0
                var n = 0
                for (k in maxOf(0, i - radius)..minOf(along - 1, i + radius)) {
                    sum += src[j * stride + k * step]
                    n++
                }
                out[j * stride + i * step] = sum / n
            }
        }
        return out
    }
    val blurred = Array(3) { c -> box(box(small[c], sw, sh, sw, 1), sh, sw, 1, sw) }
    val out = IntArray(width * height)
    for (y in 0 until height) {
        for (x in 0 until width) {
            val s = (y / factor) * sw + x / factor
            out[y * width + x] = (0xff shl 24) or (blurred[0][s] shl 16) or (blurred[1][s] shl 8) or blurred[2][s]
        }
    }
    return out
}

/** out = picture where alpha is 255, background where it is 0, per channel (p a + b (255 - a) + 127) / 255 between. */
fun composite(picture: IntArray, background: IntArray, alpha: ByteArray, out: IntArray = IntArray(picture.size)): IntArray {
    if (background.size != picture.size || alpha.size != picture.size || out.size != picture.size) {
        throw PreprocessError("composite: ${picture.size} picture, ${background.size} background, ${alpha.size} alpha and " +
            "${out.size} output pixels differ")
    }
    for (i in picture.indices) {
        val a = alpha[i].toInt() and 0xff
        val p = picture[i]
        val b = background[i]
        var px = 0xff shl 24
        for (shift in intArrayOf(16, 8, 0)) {
            val v = (((p shr shift) and 0xff) * a + ((b shr shift) and 0xff) * (255 - a) + 127) / 255
            px = px or (v shl shift)
        }
        out[i] = px
    }
    return out
}

/** Mirror each row in place (the front camera's preview is shown as a mirror). */
fun mirrorRows(argb: IntArray, width: Int, height: Int) {
    for (y in 0 until height) {
        var l = y * width
        var r = l + width - 1
        while (l < r) {
            val t = argb[l]
            argb[l] = argb[r]
            argb[r] = t
            l++
            r--
        }
    }
}

/** A solid background of one colour (the replacement effect's default). */
fun solidBackground(width: Int, height: Int, argb: Int): IntArray = IntArray(width * height) { argb }

/** Frames per second and per-stage medians over the last [window] frames (the on-screen numbers). */
class LatencyMeter(val window: Int = 60) {
    private val ends = LongArray(window)
    private val stages = Array(3) { DoubleArray(window) }
    private var count = 0L

    /** One frame: preprocess, model and postprocess ms, and the monotonic time it finished (ns). */
    fun add(preprocessMs: Double, modelMs: Double, postprocessMs: Double, endNanos: Long) {
        val i = (count % window).toInt()
        ends[i] = endNanos
        stages[0][i] = preprocessMs
        stages[1][i] = modelMs
        stages[2][i] = postprocessMs
        count++
    }

    val frames: Int get() = minOf(count, window.toLong()).toInt()

    /** Frames per second over the window (0 before two frames). */
    fun fps(): Double {
        val n = frames
        if (n < 2) return 0.0
        val last = ((count - 1) % window).toInt()
        val first = ((count - n) % window).toInt()
        val span = ends[last] - ends[first]
        return if (span <= 0) 0.0 else (n - 1) * 1e9 / span
    }

    /** Median ms of stage 0 (preprocess), 1 (model) or 2 (postprocess) over the window. */
    fun median(stage: Int): Double {
        val n = frames
        if (n == 0) return 0.0
        val v = stages[stage].copyOf(n)
        java.util.Arrays.sort(v)
        return LatencyStats.medianOfSorted(v)
    }

    /** e.g. "29.8 fps | pre 3.1 ms | model 18.2 ms | post 2.4 ms (median of 60)". */
    fun summary(): String = "${fmt("%.1f", fps())} fps | pre ${fmt("%.1f", median(0))} ms | model ${fmt("%.1f", median(1))} ms | " +
        "post ${fmt("%.1f", median(2))} ms (median of $frames)"
}

/** True when the camera (lens), the rotation or the frame size differs from the last frame's. */
class CameraChange {
    private var last: List<Int>? = null

    fun changed(lens: Int, rotationDegrees: Int, width: Int, height: Int): Boolean {
        val now = listOf(lens, rotationDegrees, width, height)
        val before = last
        last = now
        return before != null && before != now
    }
}
