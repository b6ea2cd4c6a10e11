// The manifest, the state carried per state form, the resets, and the mask's last step, on the
// exported target of BACKDROP_GOLDEN_DIST (default dist/android-arm64): a SegmentationStream
// fed each golden's camera buffers must hand the model the golden's inputs and states, reset
// exactly where the golden does, and map the golden's outputs back to its camera masks.
package ai.backdrop.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

class StreamTest {
    private val dist = File(System.getenv("BACKDROP_GOLDEN_DIST") ?: "dist/android-arm64")

    private fun manifest(): Manifest {
        val file = File(dist, "manifest.json")
        assertTrue("$file does not exist: run `make export TARGET=android-arm64` first", file.isFile)
        return Manifest.load(file)
    }

    private class Golden(val bucket: String, val width: Int, val height: Int, val format: String, val buffers: NpyArray,
                         val frames: NpyArray, val resets: BooleanArray, val masks: NpyArray, val cameraMasks: NpyArray) {
        fun frame(n: Int): Yuv420Frame {
            val b = buffers.row(n).bytes()
            return if (format == "nv21") Yuv420Frame.nv21(b, width, height) else Yuv420Frame.nv12(b, width, height)
        }
    }

    private fun golden(m: Manifest, bucket: String): Golden {
        val g = Npy.readNpz(File(dist, m.goldens.getValue(bucket)))
        val size = g.getValue("camera_size").longs()
        return Golden(g.getValue("bucket_name").string(), size[1].toInt(), size[0].toInt(), g.getValue("camera_format").string(),
            g.getValue("camera_buffers"), g.getValue("frames"), g.getValue("resets").booleans(), g.getValue("expected_masks"),
            g.getValue("expected_camera_masks"))
    }

    private fun bits(a: FloatArray): IntArray = IntArray(a.size) { java.lang.Float.floatToRawIntBits(a[it]) }

    private fun assertBitEqual(what: String, want: FloatArray, got: FloatArray) = assertArrayEquals(what, bits(want), bits(got))

    @Test
    fun theManifestDescribesTheExport() {
        val m = manifest()
        assertEquals(KNOWN_SCHEMA_MAJOR, m.schemaVersion.substringBefore('.').toInt())
        assertEquals("android", m.platform)
        assertTrue(m.artifacts.isNotEmpty())
        assertEquals("a sha256 per golden", m.goldens.keys, m.goldenSha256.keys)
        for (b in m.buckets) {
            assertEquals("the golden of ${b.name}", b.name, golden(m, b.name).bucket)
            val g = golden(m, b.name)
            assertEquals("a golden frame's bucket", b, m.selectBucket(g.height, g.width))
            for (a in m.artifactsFor(b.name)) {
                assertTrue(a.key, File(dist, a.path).exists())
                assertEquals(a.key, listOf(1, 3, b.height, b.width), a.frameInput.shape)
            }
        }
        println("StreamTest: manifest ${m.schemaVersion}, ${m.buckets.size} buckets, ${m.artifacts.size} artifacts")
    }

    @Test
    fun anUnknownSchemaMajorIsRefused() {
        val text = File(dist, "manifest.json").readText()
        val newer = text.replaceFirst(Regex("\"schema_version\":\\s*\"1\\."), "\"schema_version\": \"2.")
        try {
            Manifest.parse(newer)
            fail("schema 2.x was read")
        } catch (e: ManifestError) {
            assertTrue(e.message, "MAJOR 2" in e.message!!)
        }
        val minor = text.replaceFirst(Regex("\"schema_version\":\\s*\"1\\.[0-9]+\""), "\"schema_version\": \"1.99\"")
        assertEquals("1.99", Manifest.parse(minor).schemaVersion)
        for (bad in listOf("[]", "{", "{\"schema_version\": \"1.2\"}", text.replaceFirst("\"threshold\":", "\"threshold_\":"))) {
            try {
                Manifest.parse(bad)
                fail("read: ${bad.take(40)}")
            } catch (e: ManifestError) {
                assertFalse(e.message.isNullOrBlank())
            }
        }
    }

    /** Runs each golden through a stream on every state form its bucket was exported with. */
    @Test
    fun goldensThroughAStreamCarryAndResetTheState() {
        val m = manifest()
        var frames = 0
        for (b in m.buckets) {
            val g = golden(m, b.name)
            for (form in StateForm.values()) {
                val artifact = m.artifactsFor(b.name).firstOrNull { it.stateForm == form } ?: continue
                val stream = SegmentationStream(m) { artifact }
                val hw = b.height * b.width
                for (n in 0 until g.frames.shape[0]) {
                    if (g.resets[n] && n > 0) stream.sceneCut()
                    val feed = stream.prepare(g.frame(n))
                    val at = "${b.name} ${form.json} frame $n"
                    assertEquals("$at: reset", g.resets[n], feed.reset)
                    assertBitEqual("$at: model input", g.frames.row(n).floats(), feed.input)
                    if (form == StateForm.EXPLICIT) {
                        val want = if (g.resets[n]) FloatArray(hw) else g.masks.row(n - 1).floats()
                        assertBitEqual("$at: prev_mask", want, feed.prevMask!!)
                    } else {
                        assertNull(feed.prevMask)
                        assertEquals(if (g.resets[n]) 1.0f else 0.0f, feed.resetFlag)
                    }
                    val out = g.masks.row(n).floats()
                    assertBitEqual("$at: camera mask", g.cameraMasks.row(n).floats(), stream.complete(feed, out, out))
                    frames++
                }
            }
        }
        assertTrue("no artifacts to run", frames > 0)
        println("StreamTest: $frames golden frames through streams, state and resets as the goldens")
    }

    @Test
    fun aCameraSwitchOrABucketChangeResets() {
        val m = manifest()
        val first = golden(m, m.buckets[0].name)
        val explicit = { bucket: Bucket -> m.artifactsFor(bucket.name).first { it.stateForm == StateForm.EXPLICIT } }
        val stream = SegmentationStream(m, artifactFor = explicit)
        fun step(g: Golden, n: Int): ModelFeed {
            val feed = stream.prepare(g.frame(n))
            val out = g.masks.row(n).floats()
            stream.complete(feed, out, out)
            return feed
        }
        assertTrue(step(first, 1).reset)
        assertFalse(step(first, 2).reset)
        stream.cameraSwitched()
        val switched = step(first, 3)
        assertTrue(switched.reset)
        assertTrue(switched.prevMask!!.all { it == 0.0f })
        val carried = step(first, 4)
        assertFalse(carried.reset)
        assertBitEqual("carried next_mask", first.masks.row(3).floats(), carried.prevMask!!)
        if (m.buckets.size > 1) {
            val other = golden(m, m.buckets[1].name)
            assertTrue("into another bucket", step(other, 0).reset)
            assertFalse(step(other, 1).reset)
            assertTrue("back again", step(first, 5).reset)
        }
        // A wrong-size output is refused, not fed back.
        val feed = stream.prepare(first.frame(6))
        try {
            stream.complete(feed, FloatArray(3), FloatArray(3))
            fail("a 3-value mask was taken")
        } catch (e: PreprocessError) {
            assertTrue(e.message, "3 values" in e.message!!)
        }
    }

    @Test
    fun thresholdAndFeatherFollowTheReference() {
        val p = floatArrayOf(0.0f, 0.3f, 0.49999997f, 0.5f, 0.5000001f, 0.7f, 1.0f, -0.25f, 1.5f)
        assertArrayEquals(byteArrayOf(0, 0, 0, 1, 1, 1, 1, 0, 1), binaryMask(p, 0.5f))
        val (lo, hi) = featherBand(0.5)
        assertEquals(0.3f, lo)
        assertEquals(0.7f, hi)
        val alpha = featherAlpha(p, lo, hi).map { it.toInt() and 0xff }
        assertEquals(listOf(0, 0, 127, 128, 128, 255, 255, 0, 255), alpha)
    }
}
