// The camera-buffer preprocessing of the phone pipeline in Kotlin, bit for bit the Python
// reference (backdrop/core/frames.py, backdrop/core/buckets.py, models/reference.py
// bucket_input; the rules are docs/frames.md and docs/buckets.md) and its C++ twin
// (device_tests/native/preprocess.cpp):
//
//   camera planes (YUV_420_888 with row and pixel strides, NV21, NV12) --toYuv444--> uint8
//   (H, W, 3) Y, Cb, Cr, full range --plan--> placement in the bucket --modelInput--> float32
//   (3, Hb, Wb) --fromBucket--> the bucket's mask cropped and resized back to (H, W).
//
// Integers are Long with floor division where a numerator can be negative; floats are the
// float32 operations of the reference in its order. The JVM rounds every float operation on its
// own (no fused multiply-add unless Math.fma is called), which the resize relies on.
//
// Kotlin 1.3 (Debian's compiler, android_demo/core/build.sh) and current Kotlin both compile it.
package ai.backdrop.core

/** A buffer, size or placement the reference would reject (its FrameError / BucketError). */
class PreprocessError(message: String) : IllegalArgumentException(message)

enum class ColorRange { FULL, VIDEO }

const val MAX_FRAME_SIDE = 65536L  // buckets.py MAX_FRAME_SIDE
const val MAX_BUCKET_SIDE = 4096L  // buckets.py MAX_BUCKET_SIDE

/**
 * One plane of a camera image as Android's `Image.Plane` describes it: sample (row, col) of the
 * plane is `data[offset + row * rowStride + col * pixelStride]`.
 */
class Plane(val data: ByteArray, val rowStride: Int, val pixelStride: Int, val offset: Int = 0)

/**
 * A 4:2:0 camera frame of width x height: a full-resolution Y plane and half-resolution
 * (ceil) U and V planes. YUV_420_888 gives three planes directly; [nv21] and [nv12] view a
 * packed semi-planar buffer as the same three planes.
 */
class Yuv420Frame(val width: Int, val height: Int, val y: Plane, val u: Plane, val v: Plane) {
    init {
        checkFrameSide("width", width.toLong())
        checkFrameSide("height", height.toLong())
        val cw = (width + 1) / 2
        val ch = (height + 1) / 2
        checkPlane("Y", y, width, height)
        checkPlane("U", u, cw, ch)
        checkPlane("V", v, cw, ch)
    }

    companion object {
        /** A packed NV21 buffer (V, U pairs after the Y rows); rowStride 0: packed rows. */
        fun nv21(buffer: ByteArray, width: Int, height: Int, rowStride: Int = 0): Yuv420Frame =
            semiPlanar(buffer, width, height, rowStride, "NV21", vFirst = true)

        /** A packed NV12 buffer (U, V pairs after the Y rows); rowStride 0: packed rows. */
        fun nv12(buffer: ByteArray, width: Int, height: Int, rowStride: Int = 0): Yuv420Frame =
            semiPlanar(buffer, width, height, rowStride, "NV12", vFirst = false)

        /**
         * A planar I420 buffer (the Y plane, then U, then V; YUV_420_888 at chroma pixel stride 1
         * copied into one array). rowStride 0: packed rows; else Y rows of rowStride bytes and U
         * and V rows of ceil(rowStride / 2) bytes (docs/frames.md "Plane layouts").
         */
        fun i420(buffer: ByteArray, width: Int, height: Int, rowStride: Int = 0): Yuv420Frame {
            checkFrameSide("width", width.toLong())
            checkFrameSide("height", height.toLong())
            if (rowStride != 0 && rowStride < width) {
                throw PreprocessError("row stride $rowStride is too small for an I420 frame of width $width: " +
                    "each Y row needs at least $width bytes")
            }
            val cw = (width + 1) / 2
            val ch = (height + 1) / 2
            val yStride = if (rowStride != 0) rowStride else width
            val cStride = if (rowStride != 0) (rowStride + 1) / 2 else cw
            val expected = yStride.toLong() * height + 2L * cStride * ch
            if (buffer.size.toLong() != expected) {
                val rows = if (rowStride != 0) "row stride $rowStride" else "no row padding"
                throw PreprocessError("I420 buffer for a ${width}x$height (width x height) frame with $rows " +
                    "must be $expected bytes; got ${buffer.size}")
            }
            val u = yStride * height
            return Yuv420Frame(width, height, Plane(buffer, yStride, 1), Plane(buffer, cStride, 1, u),
                Plane(buffer, cStride, 1, u + cStride * ch))
        }

        private fun semiPlanar(buffer: ByteArray, width: Int, height: Int, rowStride: Int, name: String,
                               vFirst: Boolean): Yuv420Frame {
            val expected = semiPlanarSize(width.toLong(), height.toLong(), rowStride.toLong(), name)
            if (buffer.size.toLong() != expected) {
                val rows = if (rowStride != 0) "row stride $rowStride" else "no row padding"
                throw PreprocessError("$name buffer for a ${width}x$height (width x height) frame with $rows " +
                    "must be $expected bytes; got ${buffer.size}")
            }
            val yStride = if (rowStride != 0) rowStride else width
            val cStride = if (rowStride != 0) rowStride else 2 * ((width + 1) / 2)
            val c = yStride * height
            val y = Plane(buffer, yStride, 1)
            val first = Plane(buffer, cStride, 2, c)
            val second = Plane(buffer, cStride, 2, c + 1)
            return if (vFirst) Yuv420Frame(width, height, y, second, first) else Yuv420Frame(width, height, y, first, second)
        }

        /** Bytes a packed NV21/NV12 buffer has (rowStride 0: packed rows). */
        fun semiPlanarSize(width: Long, height: Long, rowStride: Long, name: String = "NV21"): Long {
            checkFrameSide("width", width)
            checkFrameSide("height", height)
            val cw = (width + 1) / 2
            val ch = (height + 1) / 2
            if (rowStride == 0L) return width * height + 2 * cw * ch
            if (rowStride < 2 * cw) {
                throw PreprocessError("row stride $rowStride is too small for a $name frame of width $width: " +
                    "each row needs at least ${2 * cw} bytes")
            }
            return rowStride * height + rowStride * ch
        }

        private fun checkPlane(name: String, p: Plane, cols: Int, rows: Int) {
            if (p.pixelStride < 1) throw PreprocessError("$name plane pixel stride ${p.pixelStride} is not positive")
            if (p.rowStride < (cols - 1) * p.pixelStride + 1) {
                throw PreprocessError("$name plane row stride ${p.rowStride} is too small for $cols samples " +
                    "at pixel stride ${p.pixelStride}")
            }
            val last = p.offset.toLong() + (rows - 1).toLong() * p.rowStride + (cols - 1).toLong() * p.pixelStride
            if (p.offset < 0 || last >= p.data.size) {
                throw PreprocessError("$name plane of ${p.data.size} bytes is too small for $cols x $rows samples " +
                    "at row stride ${p.rowStride}, pixel stride ${p.pixelStride}, offset ${p.offset}")
            }
        }
    }
}

internal fun checkFrameSide(label: String, v: Long) {
    if (v < 1 || v > MAX_FRAME_SIDE) throw PreprocessError("frame $label $v is not between 1 and $MAX_FRAME_SIDE")
}

/** floor(num / den) for den > 0 and any sign of num. */
internal fun floorDiv(num: Long, den: Long): Long {
    val q = num / den
    return if (num % den != 0L && num < 0) q - 1 else q
}

/** floor(num / den + 1/2), frames.py _round_half_up_div. */
internal fun roundHalfUpDiv(num: Long, den: Long): Long = floorDiv(2 * num + den, 2 * den)

private fun clampU8(v: Long): Int = if (v < 0) 0 else if (v > 255) 255 else v.toInt()

private val VIDEO_Y = IntArray(256) { clampU8(roundHalfUpDiv((it - 16L) * 255, 219)) }
private val VIDEO_C = IntArray(256) { clampU8(roundHalfUpDiv((it - 128L) * 255 + 128L * 224, 224)) }

/**
 * The frame as uint8 (height, width, 3) Y, Cb, Cr in full range (frames.py nv21_to_yuv /
 * nv12_to_yuv, then _expand for video range): nearest chroma, sample (r / 2, c / 2).
 */
fun toYuv444(frame: Yuv420Frame, range: ColorRange = ColorRange.FULL): ByteArray {
    val w = frame.width
    val h = frame.height
    val out = ByteArray(w * h * 3)
    val video = range == ColorRange.VIDEO
    val y = frame.y
    val u = frame.u
    val v = frame.v
    for (r in 0 until h) {
        val yRow = y.offset + r * y.rowStride
        val uRow = u.offset + (r / 2) * u.rowStride
        val vRow = v.offset + (r / 2) * v.rowStride
        var o = r * w * 3
        for (c in 0 until w) {
            val yv = y.data[yRow + c * y.pixelStride].toInt() and 0xff
            val uv = u.data[uRow + (c / 2) * u.pixelStride].toInt() and 0xff
            val vv = v.data[vRow + (c / 2) * v.pixelStride].toInt() and 0xff
            out[o] = (if (video) VIDEO_Y[yv] else yv).toByte()
            out[o + 1] = (if (video) VIDEO_C[uv] else uv).toByte()
            out[o + 2] = (if (video) VIDEO_C[vv] else vv).toByte()
            o += 3
        }
    }
    return out
}

/** buckets.py Placement (sizes are height x width). */
data class Placement(
    val srcHeight: Int, val srcWidth: Int,
    val bucketHeight: Int, val bucketWidth: Int,
    val scaledHeight: Int, val scaledWidth: Int,
    val padTop: Int, val padBottom: Int, val padLeft: Int, val padRight: Int
)

/** buckets.py plan(): the largest aspect-preserving fit, centred, in exact integers. */
fun plan(srcHeight: Int, srcWidth: Int, bucketHeight: Int, bucketWidth: Int): Placement {
    checkFrameSide("height", srcHeight.toLong())
    checkFrameSide("width", srcWidth.toLong())
    if (bucketHeight < 1 || bucketHeight > MAX_BUCKET_SIDE || bucketWidth < 1 || bucketWidth > MAX_BUCKET_SIDE) {
        throw PreprocessError("bucket ${bucketHeight}x$bucketWidth is not within 1..$MAX_BUCKET_SIDE on each side")
    }
    val h = srcHeight.toLong()
    val w = srcWidth.toLong()
    val hb = bucketHeight.toLong()
    val wb = bucketWidth.toLong()
    fun roundDiv(num: Long, den: Long): Long = (2 * num + den) / (2 * den)  // num >= 0
    val sh: Long
    val sw: Long
    if (hb * w <= wb * h) {  // height limits the scale
        sh = hb
        sw = minOf(maxOf(roundDiv(w * hb, h), 1L), wb)
    } else {
        sw = wb
        sh = minOf(maxOf(roundDiv(h * wb, w), 1L), hb)
    }
    val top = (hb - sh) / 2
    val left = (wb - sw) / 2
    return Placement(srcHeight, srcWidth, bucketHeight, bucketWidth, sh.toInt(), sw.toInt(),
        top.toInt(), (hb - sh - top).toInt(), left.toInt(), (wb - sw - left).toInt())
}

/** buckets.py _axis_taps: source indices i0, i1 and float32 weight f of each output index. */
private class Taps(val i0: IntArray, val i1: IntArray, val f: FloatArray)

private fun axisTaps(nIn: Int, nOut: Int): Taps {
    val i0s = IntArray(nOut)
    val i1s = IntArray(nOut)
    val fs = FloatArray(nOut)
    val den = 2L * nOut
    for (d in 0 until nOut) {
        val num = maxOf((2L * d + 1) * nIn - nOut, 0L)
        var i0 = num / den
        val rem = num - i0 * den
        var f = rem.toFloat() / den.toFloat()  // one float32 division, both operands exact
        if (i0 >= nIn - 1) {
            i0 = (nIn - 1).toLong()
            f = 0.0f
        }
        i0s[d] = i0.toInt()
        i1s[d] = minOf(i0.toInt() + 1, nIn - 1)
        fs[d] = f
    }
    return Taps(i0s, i1s, fs)
}

/**
 * buckets.py resize_bilinear on float32 (inH, inW, channels) interleaved data -> (outH, outW,
 * channels): rows first, `a + fx * (b - a)`, then `t0 + fy * (t1 - t0)`, each float32 operation
 * rounded on its own.
 */
fun resizeBilinear(src: FloatArray, inH: Int, inW: Int, channels: Int, outH: Int, outW: Int): FloatArray {
    if (inH < 1 || inW < 1 || channels < 1) throw PreprocessError("resizeBilinear needs a non-empty image")
    if (src.size != inH * inW * channels) {
        throw PreprocessError("resizeBilinear: ${src.size} values are not $inH x $inW x $channels")
    }
    checkFrameSide("height", outH.toLong())
    checkFrameSide("width", outW.toLong())
    val ty = axisTaps(inH, outH)
    val tx = axisTaps(inW, outW)
    val c = channels
    val rows = FloatArray(inH * outW * c)  // (inH, outW, C)
    for (r in 0 until inH) {
        val s = r * inW * c
        val d = r * outW * c
        for (j in 0 until outW) {
            val fx = tx.f[j]
            val a = s + tx.i0[j] * c
            val b = s + tx.i1[j] * c
            for (k in 0 until c) {
                val diff = src[b + k] - src[a + k]
                val step = fx * diff
                rows[d + j * c + k] = src[a + k] + step
            }
        }
    }
    val out = FloatArray(outH * outW * c)
    for (i in 0 until outH) {
        val fy = ty.f[i]
        val t0 = ty.i0[i] * outW * c
        val t1 = ty.i1[i] * outW * c
        val d = i * outW * c
        for (j in 0 until outW * c) {
            val diff = rows[t1 + j] - rows[t0 + j]
            val step = fy * diff
            out[d + j] = rows[t0 + j] + step
        }
    }
    return out
}

/**
 * models/reference.py bucket_input(...)[0, :3]: uint8 YUV444 (srcHeight, srcWidth, 3) -> float32
 * (3, bucketHeight, bucketWidth): value / 255 in float32, resized to the placement's scaled size,
 * replicate padding to the bucket, channel-first.
 */
fun modelInput(yuv444: ByteArray, p: Placement): FloatArray {
    val h = p.srcHeight
    val w = p.srcWidth
    if (yuv444.size != h * w * 3) throw PreprocessError("modelInput: ${yuv444.size} bytes are not $h x $w x 3")
    val scaled01 = FloatArray(h * w * 3) { (yuv444[it].toInt() and 0xff).toFloat() / 255.0f }
    val scaled = resizeBilinear(scaled01, h, w, 3, p.scaledHeight, p.scaledWidth)
    val hb = p.bucketHeight
    val wb = p.bucketWidth
    val sh = p.scaledHeight
    val sw = p.scaledWidth
    val out = FloatArray(3 * hb * wb)
    for (y in 0 until hb) {
        val sy = minOf(maxOf(y - p.padTop, 0), sh - 1)
        for (x in 0 until wb) {
            val sx = minOf(maxOf(x - p.padLeft, 0), sw - 1)
            val s = (sy * sw + sx) * 3
            for (k in 0 until 3) out[(k * hb + y) * wb + x] = scaled[s + k]
        }
    }
    return out
}

/** buckets.py from_bucket: float32 (bucketHeight, bucketWidth) mask -> (srcHeight, srcWidth). */
fun fromBucket(mask: FloatArray, p: Placement): FloatArray {
    if (mask.size != p.bucketHeight * p.bucketWidth) {
        throw PreprocessError("fromBucket: ${mask.size} values are not ${p.bucketHeight} x ${p.bucketWidth}")
    }
    val sh = p.scaledHeight
    val sw = p.scaledWidth
    val crop = FloatArray(sh * sw)
    for (y in 0 until sh) System.arraycopy(mask, (p.padTop + y) * p.bucketWidth + p.padLeft, crop, y * sw, sw)
    return resizeBilinear(crop, sh, sw, 1, p.srcHeight, p.srcWidth)
}
