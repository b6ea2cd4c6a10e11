// The live view's pixel steps on known answers: YUV -> RGB as backdrop/core/frames.py yuv_to_rgb
// (values from it), the composite's ends and middle, the blur of a flat picture, mirroring, the
// latency meter with a fake clock and the camera-change rule.
package ai.backdrop.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

class LiveViewTest {
    private fun rgb(r: Int, g: Int, b: Int): Int = (0xff shl 24) or (r shl 16) or (g shl 8) or b

    @Test
    fun yuvToRgbAsTheReference() {
        // frames.py yuv_to_rgb of red, green, blue, white, black and grey as rgb_to_yuv gives them
        val yuv = byteArrayOf(76, 85, 255.toByte(), 150.toByte(), 44, 21, 29, 255.toByte(), 107, 255.toByte(), 128.toByte(), 128.toByte(),
            0, 128.toByte(), 128.toByte(), 128.toByte(), 128.toByte(), 128.toByte())
        assertArrayEquals(intArrayOf(rgb(254, 0, 0), rgb(0, 255, 1), rgb(0, 0, 254), rgb(255, 255, 255), rgb(0, 0, 0), rgb(128, 128, 128)),
            yuvToArgb(yuv, 6, 1))
    }

    @Test
    fun compositeBlurAndMirror() {
        val fg = intArrayOf(rgb(200, 100, 0), rgb(200, 100, 0), rgb(200, 100, 0))
        val bg = intArrayOf(rgb(0, 0, 255), rgb(0, 0, 255), rgb(0, 0, 255))
        val out = composite(fg, bg, byteArrayOf(255.toByte(), 0, 128.toByte()))
        assertEquals(fg[0], out[0])
        assertEquals(bg[1], out[1])
        assertEquals(rgb((200 * 128 + 127) / 255, (100 * 128 + 127) / 255, (255 * 127 + 127) / 255), out[2])
        val flat = IntArray(37 * 21) { rgb(10, 20, 30) }
        assertArrayEquals(flat, blurBackground(flat, 37, 21))
        val row = intArrayOf(1, 2, 3, 4, 5, 6)
        mirrorRows(row, 3, 2)
        assertArrayEquals(intArrayOf(3, 2, 1, 6, 5, 4), row)
    }

    @Test
    fun theMeterAndTheCameraChange() {
        val m = LatencyMeter(window = 4)
        assertEquals(0.0, m.fps(), 0.0)
        for (i in 0 until 6) m.add(1.0 + i, 10.0, 2.0, 1_000_000_000L + i * 50_000_000L)  // a frame every 50 ms
        assertEquals(4, m.frames)
        assertEquals(20.0, m.fps(), 1e-9)
        assertEquals(4.5, m.median(0), 0.0)  // the last four: 3, 4, 5, 6
        assertEquals("20.0 fps | pre 4.5 ms | model 10.0 ms | post 2.0 ms (median of 4)", m.summary())
        val c = CameraChange()
        assertFalse(c.changed(0, 270, 640, 480))
        assertFalse(c.changed(0, 270, 640, 480))
        assertTrue(c.changed(0, 90, 640, 480))
        assertTrue(c.changed(1, 90, 640, 480))
        assertFalse(c.changed(1, 90, 640, 480))
    }
}
