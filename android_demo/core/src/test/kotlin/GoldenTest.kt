// Every golden of an exported target reproduced by the Kotlin core: each camera buffer turned
// into the model input bit for bit, each stored reference probability mapped back to the frame
// bit for bit. The goldens come from BACKDROP_GOLDEN_DIST (default dist/android-arm64, run
// from the repository root); a missing folder fails the run, it is not skipped.
package ai.backdrop.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

class GoldenTest {
    private val dist = File(System.getenv("BACKDROP_GOLDEN_DIST") ?: "dist/android-arm64")

    private fun goldens(): List<File> {
        assertTrue("$dist does not exist: run `make export TARGET=android-arm64` first", dist.isDirectory)
        val files = dist.walkTopDown().filter { it.isFile && it.name.endsWith(".npz") && "golden" in it.path }.toList()
        assertTrue("no goldens (*.npz) under $dist", files.isNotEmpty())
        return files.sortedBy { it.path }
    }

    /** The index of the first value whose float32 bits differ, or -1. */
    private fun firstDifference(got: FloatArray, want: FloatArray): Int {
        assertEquals("length", want.size, got.size)
        for (i in got.indices) if (java.lang.Float.floatToRawIntBits(got[i]) != java.lang.Float.floatToRawIntBits(want[i])) return i
        return -1
    }

    @Test
    fun cameraBuffersBecomeTheGoldenModelInputs() {
        var frames = 0
        for (file in goldens()) {
            val g = Npy.readNpz(file)
            assertEquals(file.path, "backdrop-golden/1", g.getValue("schema").string())
            val size = g.getValue("camera_size").longs()
            val bucket = g.getValue("bucket_size").longs()
            val h = size[0].toInt()
            val w = size[1].toInt()
            val placement = plan(h, w, bucket[0].toInt(), bucket[1].toInt())
            val format = g.getValue("camera_format").string()
            val buffers = g.getValue("camera_buffers")
            val expected = g.getValue("frames")
            for (n in 0 until buffers.shape[0]) {
                val buffer = buffers.row(n).bytes()
                val frame = when (format) {
                    "nv21" -> Yuv420Frame.nv21(buffer, w, h)
                    "nv12" -> Yuv420Frame.nv12(buffer, w, h)
                    else -> throw AssertionError("${file.path}: camera format $format")
                }
                val got = modelInput(toYuv444(frame), placement)
                val want = expected.row(n).floats()
                val at = firstDifference(got, want)
                if (at >= 0) fail("${file.path} frame $n: model input differs first at flat index $at: ${got[at]} != ${want[at]}")
                frames++
            }
        }
        println("GoldenTest: $frames camera buffers reproduced bit for bit")
    }

    @Test
    fun referenceMasksMapBackToTheGoldenCameraMasks() {
        var frames = 0
        for (file in goldens()) {
            val g = Npy.readNpz(file)
            val size = g.getValue("camera_size").longs()
            val bucket = g.getValue("bucket_size").longs()
            val placement = plan(size[0].toInt(), size[1].toInt(), bucket[0].toInt(), bucket[1].toInt())
            val masks = g.getValue("expected_masks")
            val cameraMasks = g.getValue("expected_camera_masks")
            for (n in 0 until masks.shape[0]) {
                val got = fromBucket(masks.row(n).floats(), placement)
                val want = cameraMasks.row(n).floats()
                val at = firstDifference(got, want)
                if (at >= 0) fail("${file.path} frame $n: camera mask differs first at flat index $at: ${got[at]} != ${want[at]}")
                frames++
            }
        }
        println("GoldenTest: $frames reference masks mapped back bit for bit")
    }

    /** The frame's planes re-laid the ways YUV_420_888 delivers them: separate U and V planes
     * (pixel stride 1) or interleaved (pixel stride 2), every row padded to [rowPad] extra bytes. */
    private fun relay(frame: Yuv420Frame, pixelStride: Int, rowPad: Int): Yuv420Frame {
        val w = frame.width
        val h = frame.height
        val cw = (w + 1) / 2
        val ch = (h + 1) / 2
        val yStride = w + rowPad
        val y = ByteArray(yStride * h) { 0x55 }
        for (r in 0 until h) for (c in 0 until w) y[r * yStride + c] = frame.y.data[frame.y.offset + r * frame.y.rowStride + c]
        val cStride = cw * pixelStride + rowPad  // interleaved: U and V pairs share each row
        val chroma = ByteArray(cStride * ch + if (pixelStride == 1) cStride * ch else 1) { 0x55 }
        val vOffset = if (pixelStride == 1) cStride * ch else 1
        for (r in 0 until ch) for (c in 0 until cw) {
            chroma[r * cStride + c * pixelStride] = frame.u.data[frame.u.offset + r * frame.u.rowStride + c * frame.u.pixelStride]
            chroma[vOffset + r * cStride + c * pixelStride] = frame.v.data[frame.v.offset + r * frame.v.rowStride + c * frame.v.pixelStride]
        }
        return Yuv420Frame(w, h, Plane(y, yStride, 1), Plane(chroma, cStride, pixelStride), Plane(chroma, cStride, pixelStride, vOffset))
    }

    @Test
    fun yuv420888PlanesAtEveryStrideGiveTheSameFrame() {
        var checked = 0
        for (file in goldens()) {
            val g = Npy.readNpz(file)
            val size = g.getValue("camera_size").longs()
            val h = size[0].toInt()
            val w = size[1].toInt()
            val buffers = g.getValue("camera_buffers")
            val nv21 = g.getValue("camera_format").string() == "nv21"
            for (n in listOf(0, buffers.shape[0] - 1)) {
                val buffer = buffers.row(n).bytes()
                val packed = if (nv21) Yuv420Frame.nv21(buffer, w, h) else Yuv420Frame.nv12(buffer, w, h)
                val want = toYuv444(packed)
                for (pixelStride in listOf(1, 2)) for (rowPad in listOf(0, 3, 64)) {
                    val got = toYuv444(relay(packed, pixelStride, rowPad))
                    assertTrue("${file.path} frame $n pixel stride $pixelStride row pad $rowPad", got.contentEquals(want))
                    checked++
                }
            }
        }
        println("GoldenTest: $checked YUV_420_888 layouts decoded to the packed buffer's frame")
    }
}
