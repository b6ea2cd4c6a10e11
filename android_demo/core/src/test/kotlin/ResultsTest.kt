// The benchmark mode's core on the JVM, with a fake clock and a fake model: the bench schedule
// (rotation order, priming, warm-up excluded, min frames and min seconds, resets where the golden
// resets, the gate), the statistics on known answers (numbers from numpy / backdrop/bench/stats.py),
// the results document's required fields, the parity check and the am-start request. Nothing here
// needs an export; tests/test_android_results.py holds the document and the statistics to
// backdrop's Python reader on top of this.
package ai.backdrop.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ResultsTest {
    /** Time moves only when read (by [tickNs] per read), when slept, and when the fake model runs. */
    private class FakeClock(val tickNs: Long = 100_000L) : BenchClock {
        var now = 1_000_000_000L
        var slept = 0.0
        override fun nanoTime(): Long {
            val t = now
            now += tickNs
            return t
        }
        override fun currentTimeMillis(): Long = 1_764_758_400_000L + now / 1_000_000L
        override fun sleep(seconds: Double) {
            slept += seconds
            now += Math.round(seconds * 1e9)
        }
    }

    /** What the fake runtime saw: every load and every call, in order. */
    private class Log {
        val loads = ArrayList<String>()
        val calls = ArrayList<String>()  // "key reset=1|0"
    }

    /** A model that costs [modelMs] on [clock] and answers a fixed mask (next_mask = mask). */
    private class FakeRunner(val artifact: Artifact, val clock: FakeClock, val modelMs: Double, val log: Log,
                             val failAt: Int = -1, val invert: Boolean = false) : ModelRunner {
        override val threads = 4
        override val runtimeVersions = mapOf("fake-runtime" to "1.0")
        var closed = false
        override fun run(feed: ModelFeed): ModelOutput {
            if (log.calls.size == failAt) throw IllegalStateException("the fake runtime failed")
            log.calls.add("${artifact.key} reset=${if (feed.reset) 1 else 0}")
            clock.now += Math.round(modelMs * 1e6)
            val n = feed.bucket.height * feed.bucket.width
            val mask = FloatArray(n) { i -> val p = if ((i % feed.bucket.width) < feed.bucket.width / 2) 0.9f else 0.1f; if (invert) 1 - p else p }
            return ModelOutput(mask, if (artifact.stateForm == StateForm.EXPLICIT) mask.copyOf() else null)
        }
        override fun close() {
            closed = true
        }
    }

    private fun tensor(name: String, shape: String, layout: String = "NCHW") =
        "{\"name\": \"$name\", \"shape\": $shape, \"dtype\": \"float32\", \"layout\": \"$layout\"}"

    private fun artifactJson(key: String, format: String, form: String): String {
        val second = if (form == "explicit") tensor("prev_mask", "[1, 1, 8, 16]") else tensor("reset", "[1]", "C")
        val outputs = if (form == "explicit") "[${tensor("mask", "[1, 1, 8, 16]")}, ${tensor("next_mask", "[1, 1, 8, 16]")}]"
            else "[${tensor("mask", "[1, 1, 8, 16]")}]"
        return "{\"key\": \"$key\", \"path\": \"wide/$key.bin\", \"format\": \"$format\", \"runtime\": \"$format\", " +
            "\"precision\": \"fp32\", \"state_form\": \"$form\", \"bucket\": \"${key.substringBefore('/')}\", " +
            "\"inputs\": [${tensor("frame", "[1, 3, 8, 16]")}, $second], \"outputs\": $outputs, \"states\": [], " +
            "\"sha256\": \"${"ab".repeat(32)}\", \"size_bytes\": 1234, \"verified\": true}"
    }

    private val manifestText = "{\"schema_version\": \"1.2\", \"backdrop_version\": \"0.1.0\", " +
        "\"target\": {\"name\": \"android-arm64\", \"platform\": \"android\"}, \"camera\": {\"format\": \"nv21\"}, " +
        "\"model\": {\"checkpoint_sha256\": \"${"cd".repeat(32)}\"}, " +
        "\"buckets\": [{\"name\": \"wide\", \"height\": 8, \"width\": 16}, {\"name\": \"tall\", \"height\": 16, \"width\": 8}], " +
        "\"threshold\": 0.5, \"goldens\": {}, \"artifacts\": [" +
        listOf(artifactJson("wide/executorch-fp32-explicit", "executorch", "explicit"),
            artifactJson("wide/executorch-fp32-native", "executorch", "native"),
            artifactJson("wide/onnx-fp32-explicit", "onnx", "explicit"),
            artifactJson("tall/onnx-fp32-explicit", "onnx", "explicit")).joinToString() + "]}"

    private val manifest = Manifest.parse(manifestText)

    /** A 32 x 16 (W x H) NV21 sequence of [n] frames for bucket "wide", reset at 0 and [resetAt]. */
    private fun golden(n: Int = 3, resetAt: Int = 2, masks: List<FloatArray> = emptyList()): GoldenSequence {
        val w = 32
        val h = 16
        val buffers = (0 until n).map { f -> ByteArray(w * h + 2 * 16 * 8) { ((it * 7 + f * 13) and 0xff).toByte() } }
        return GoldenSequence("wide", "nv21", w, h, buffers, BooleanArray(n) { it == 0 || it == resetAt }, masks)
    }

    /** The camera-size masks the fake model gives over [golden]'s frames through the core. */
    private fun fakeCameraMasks(m: Manifest, art: Artifact, clock: FakeClock, log: Log): List<FloatArray> {
        val stream = SegmentationStream(m) { art }
        val plain = golden()
        val fake = FakeRunner(art, clock, 1.0, log)
        return (0 until plain.size).map { k ->
            val feed = stream.prepare(plain.frame(k))
            val out = fake.run(feed)
            stream.complete(feed, out.mask, out.nextMask)
        }
    }

    private fun runner(clock: FakeClock, log: Log, modelMs: Double = 2.0, failKey: String? = null): (Artifact) -> ModelRunner = { a ->
        log.loads.add(a.key)
        clock.now += 5_000_000L  // a 5 ms load
        FakeRunner(a, clock, modelMs, log, if (a.key == failKey) log.calls.size else -1)
    }

    private fun wide(): List<Artifact> = manifest.artifactsFor("wide")

    @Test
    fun theScheduleRotatesByOnePlaceEachRound() {
        val turns = benchSchedule(listOf(listOf("a", "b", "c"), listOf("d")), 3)
        assertEquals(listOf("a", "b", "c", "b", "c", "a", "c", "a", "b", "d", "d", "d"), turns.map { it.member })
        assertEquals(listOf(0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2), turns.map { it.round })
        // every member takes every place once in as many rounds as there are members
        for (place in 0 until 3) assertEquals(setOf("a", "b", "c"), (0 until 3).map { turns[it * 3 + place].member }.toSet())
    }

    @Test
    fun theRunnerPrimesRotatesWarmsUpAndTimesMinFrames() {
        val clock = FakeClock()
        val log = Log()
        val protocol = BenchProtocol.named("quick", warmup = 2, minFrames = 9, minSeconds = 0.0, rounds = 2)
        assertEquals("custom", protocol.name)
        assertEquals(5, protocol.roundPlan.minFrames)  // ceil(9 / 2)
        val run = BenchRunner(manifest, protocol, mapOf("wide" to golden()), runner(clock, log), clock).run(wide())
        // priming: the first artifact of each format, one frame; then rounds rotated by one place
        val e = "wide/executorch-fp32-explicit"
        val n = "wide/executorch-fp32-native"
        val o = "wide/onnx-fp32-explicit"
        assertEquals(listOf(e, o, e, n, o, n, o, e), log.loads)
        // each timed round: 2 warm-up frames (each a reset), then golden frames 0 1 2 0 1 with resets at 0 and 2
        val firstTimed = log.calls.subList(2, 2 + 7)
        assertEquals(listOf(1, 1, 1, 0, 1, 1, 0).map { "$e reset=$it" }, firstTimed)
        for (a in run.results) {
            assertNull(a.failure)
            assertEquals(2, a.rounds.size)
            assertEquals(listOf(0, 1), a.gates.map { it.round })
            for (t in a.rounds) {
                assertEquals("warm-up frames are not timed", 5, t.modelMs.size)
                assertEquals(5, t.e2eMs.size)
                assertEquals(5.1, t.loadMs, 1e-9)  // the load plus one clock read
                for (v in t.modelMs) assertEquals(2.1, v, 1e-9)  // the model call plus one read
                for (v in t.e2eMs) assertEquals(2.3, v, 1e-9)  // the frame: three reads after its first, and the model
                assertEquals(4, t.threads)
            }
            assertEquals(mapOf("fake-runtime" to "1.0"), a.runtimeVersions)
        }
        assertTrue(run.notes.isEmpty())
    }

    @Test
    fun minSecondsExtendsARound() {
        val clock = FakeClock()
        val log = Log()
        val protocol = BenchProtocol("custom", warmup = 0, minFrames = 1, minSeconds = 0.009, rounds = 1)
        val r = BenchRunner(manifest, protocol, mapOf("wide" to golden()), runner(clock, log, modelMs = 3.0), clock)
            .round(wide()[0], golden(), protocol.roundPlan)
        // 3.3 ms end to end a frame: 9 ms needs 3 frames (9.9 ms)
        assertEquals(3, r.e2eMs.size)
    }

    @Test
    fun artifactsWithoutAGoldenAreSkippedAndFailuresStopAnArtifact() {
        val clock = FakeClock()
        val log = Log()
        val protocol = BenchProtocol("custom", warmup = 0, minFrames = 2, minSeconds = 0.0, rounds = 2)
        val all = manifest.artifacts
        val run = BenchRunner(manifest, protocol, mapOf("wide" to golden()), runner(clock, log, failKey = "wide/onnx-fp32-explicit"), clock)
            .run(all)
        assertEquals(listOf("skipped tall/onnx-fp32-explicit: no golden for bucket tall in the app (make android-demo bundles one bucket's)"),
            run.notes)
        val failed = run.results.single { it.artifact.key == "wide/onnx-fp32-explicit" }
        assertEquals("IllegalStateException: the fake runtime failed", failed.failure)
        assertEquals("no round after the failure", 1, failed.gates.size)
        val doc = ResultsDocument.build(run, RunContext.fromManifest(manifestText, "phone"), device(false))
        assertEquals(2, doc.getAsJsonArray("results").size())
        val notes = doc.getAsJsonObject("run").getAsJsonArray("notes").map { it.asString }
        assertTrue(notes.toString(), notes.contains("failed wide/onnx-fp32-explicit: IllegalStateException: the fake runtime failed"))
    }

    @Test
    fun theGateWaitsForACoolDeviceAndTimesOut() {
        val clock = FakeClock(tickNs = 0)
        val temps = ArrayDeque50(listOf(50.0, 46.0, 40.0))
        val ok = waitForGate({ mapOf("temp_c:battery" to temps.next()) }, Gate(45.0, 60.0, 1.0), 3, clock)
        assertFalse(ok.timedOut)
        assertEquals(2.0, ok.waitedS, 1e-9)
        assertEquals(mapOf("temp_c:battery" to 40.0), ok.readings)
        val hot = waitForGate({ mapOf("temp_c:cpu" to 80.0) }, Gate(45.0, 2.5, 1.0), 0, clock)
        assertTrue(hot.timedOut)
        assertEquals(2.5, hot.waitedS, 1e-9)  // polls at 0, 1 and 2 s, then after min(poll, time left) at 2.5 s
        assertEquals(listOf("cpu0 capped at 1200 of 2400 MHz"),
            gateBlockers(mapOf("cap_mhz:cpu0" to 1200.0, "max_mhz:cpu0" to 2400.0, "cap_mhz:cpu1" to 2400.0, "max_mhz:cpu1" to 2400.0),
                Gate()))
        val none = waitForGate({ emptyMap() }, Gate(), 0, clock)
        assertFalse(none.timedOut)
        assertTrue(none.readings.isEmpty())
    }

    /** The next value each call, the last one repeated (Kotlin 1.3 has no kotlin.collections.ArrayDeque). */
    private class ArrayDeque50(val values: List<Double>) {
        var i = 0
        fun next(): Double = values[minOf(i++, values.size - 1)]
    }

    @Test
    fun statisticsOnKnownAnswers() {
        // backdrop.bench.stats.summarize([1, 2, 3, 4]) under numpy 2.4
        val s = LatencyStats.summarize(doubleArrayOf(1.0, 2.0, 3.0, 4.0))
        assertEquals(Stats(4, 2.5, 3.7, 3.9699999999999998, 2.5, 1.0, 4.0, 2.5, 0.5163977794943222, 1.0, 4.0), s)
        assertEquals(5.5, LatencyStats.trimmedMean(DoubleArray(10) { it + 1.0 }), 0.0)  // 10 %: one cut from each end
        val one = LatencyStats.summarize(doubleArrayOf(7.25))
        assertEquals(Pair(7.25, 7.25), Pair(one.medianCiLow, one.medianCiHigh))
        assertEquals(0.0, one.cv, 0.0)
        // stats.median_interval([3.25, 1.5, 9.75, 2.0, 4.5, 4.0, 12.0]) == (2.0, 9.75)
        assertEquals(Pair(2.0, 9.75), LatencyStats.medianInterval(doubleArrayOf(3.25, 1.5, 9.75, 2.0, 4.5, 4.0, 12.0)))
        // numpy.random.default_rng(0): bit_generator.random_raw(3), integers(0, 1000, size=5)
        val raw = NumpyPcg64(0)
        assertArrayEquals(longArrayOf(-6696874842932477345L, 4976686463289251617L, 755828109848996024L),
            longArrayOf(raw.nextLong(), raw.nextLong(), raw.nextLong()))
        val ints = NumpyPcg64(0)
        assertArrayEquals(intArrayOf(850, 636, 511, 269, 307), IntArray(5) { ints.below(1000) })
        // Python's round(v, 4) on the binary value: 0.12345 is just above, 2.00005 and 2.67495 just below
        assertEquals(0.1235, round4(0.12345), 0.0)
        assertEquals(2.0, round4(2.00005), 0.0)
        assertEquals(2.6749, round4(2.67495), 0.0)
        try {
            LatencyStats.summarize(doubleArrayOf(1.0, -0.5))
            fail("a negative sample was summarised")
        } catch (e: ResultsError) {
            assertTrue(e.message!!, e.message!!.contains("finite and >= 0"))
        }
    }

    private fun device(emulated: Boolean) = DeviceDescription.of(DeviceInfo("Google", "Pixel 8", "Google", "Tensor G3", "shiba",
        if (emulated) "ranchu" else "shiba", listOf("arm64-v8a"), 34, "14", "google/shiba/shiba:14/x:user/release-keys",
        "5.15.110", "processor\t: 0\nCPU part\t: 0xd41\n", 9, emulated, mapOf("executorch-android" to "1.5.1"), "0.1.0"))

    @Test
    fun theDeviceIsNamedAsTheAdbDeviceNamesAPhone() {
        val d = device(false)
        assertEquals("android-tensor-g3", d.tier)
        assertEquals("android_demo:google-pixel-8", d.name)
        assertEquals("aarch64", d.machine)
        assertEquals("Arm CPU parts 0xd41", d.cpu)
        assertEquals("Android 14 (SDK 34, ABI arm64-v8a)", d.os)
        assertFalse(d.emulated)
        val e = device(true)
        assertEquals("emulator-arm64", e.tier)
        assertTrue(e.emulated)
        assertEquals("Qualcomm Technologies, Inc SM8550", DeviceDescription.cpuFromCpuinfo("Processor\t: AArch64\nHardware\t: Qualcomm Technologies, Inc SM8550\n"))
        assertTrue(DeviceDescription.looksLikeEmulator("google/sdk_gphone64_arm64/emu64a:14/x", "ranchu", "sdk_gphone64_arm64"))
        assertFalse(DeviceDescription.looksLikeEmulator("google/shiba/shiba:14/x", "shiba", "shiba"))
        assertEquals("sm8550-ab", slug("  SM8550_AB "))
    }

    @Test
    fun theDocumentHasEveryRequiredField() {
        val clock = FakeClock()
        val log = Log()
        val protocol = BenchProtocol("custom", warmup = 1, minFrames = 4, minSeconds = 0.0, rounds = 2)
        val run = BenchRunner(manifest, protocol, mapOf("wide" to golden()), runner(clock, log), clock,
            gateReadings = { mapOf("temp_c:battery" to 30.0) }).run(wide())
        val doc = ResultsDocument.build(run, RunContext.fromManifest(manifestText, "Google Pixel 8", listOf("a note"), "s"), device(true))
        // what results.schema.json requires, at every level
        for (k in listOf("format", "format_version", "run", "results")) assertTrue(k, doc.has(k))
        assertEquals("backdrop-results", doc.get("format").asString)
        assertEquals("1.0", doc.get("format_version").asString)
        val r = doc.getAsJsonObject("run")
        for (k in listOf("started_at", "finished_at", "source", "host", "backdrop_version", "git_commit", "target", "protocol", "device")) {
            assertTrue(k, r.has(k))
        }
        assertTrue(Regex("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$").matches(r.get("started_at").asString))
        assertEquals("0.1.0", r.get("backdrop_version").asString)
        assertEquals("android-arm64", r.get("target").asString)
        assertEquals(sha256Hex(manifestText.toByteArray()), r.get("manifest_sha256").asString)
        for (k in listOf("name", "warmup", "min_frames", "min_seconds", "rounds", "cooldown_s", "gate", "frames")) {
            assertTrue(k, r.getAsJsonObject("protocol").has(k))
        }
        for (k in listOf("name", "tier", "emulated", "machine", "cpu", "os", "runtime_versions")) assertTrue(k, r.getAsJsonObject("device").has(k))
        val results = doc.getAsJsonArray("results")
        assertEquals(3, results.size())
        for (e in results) {
            val o = e.asJsonObject
            for (k in listOf("artifact", "runtime_versions", "threads", "cores", "memory", "gate", "flags", "load_ms", "model_ms", "e2e_ms")) {
                assertTrue(k, o.has(k))
            }
            val a = o.getAsJsonObject("artifact")
            for (k in listOf("key", "bucket", "format", "precision", "state_form", "sha256", "size_bytes", "checkpoint_sha256", "peer")) {
                assertTrue(k, a.has(k))
            }
            assertEquals("cd".repeat(32), a.get("checkpoint_sha256").asString)
            assertEquals(listOf("emulated"), o.getAsJsonArray("flags").map { it.asString })
            assertEquals(listOf(2, 2), o.getAsJsonArray("round_frames").map { it.asInt })
            assertEquals(4, o.getAsJsonArray("model_ms").size())
            assertEquals(2, o.getAsJsonArray("load_ms").size())
        }
        // nulls are written (git_commit and memory are required even when unknown), and the text parses back
        val text = ResultsDocument.toText(doc)
        assertTrue(text.contains("\"git_commit\": null"))
        assertTrue(text.contains("\"memory\": null"))
        assertEquals(doc, JsonParser.parseString(text))
        val stats = ResultsDocument.statistics(doc).getAsJsonObject("wide/executorch-fp32-explicit")
        assertEquals(setOf("load", "model", "e2e"), stats.keySet())
        assertEquals(4, stats.getAsJsonObject("model").get("n").asInt)
    }

    @Test
    fun aDocumentNeedsAMeasuredArtifact() {
        val run = BenchRun(0L, 1L, BenchProtocol.QUICK, listOf(ArtifactRun(wide()[0], emptyList(), emptyList(), "it broke", emptyMap())),
            emptyList())
        try {
            ResultsDocument.build(run, RunContext.fromManifest(manifestText, "phone"), device(false))
            fail("a document without a measured artifact was built")
        } catch (e: ResultsError) {
            assertEquals("no artifact has a timed round: wide/executorch-fp32-explicit: it broke", e.message)
        }
    }

    @Test
    fun protocolsByName() {
        assertSame(BenchProtocol.QUICK, BenchProtocol.named("quick"))
        assertSame(BenchProtocol.QUICK, BenchProtocol.named("quick", rounds = 5))  // unchanged: still "quick"
        val m = BenchProtocol.named("mlperf", rounds = 4)
        assertEquals("custom", m.name)
        assertEquals(256, m.roundPlan.minFrames)
        assertEquals(15.0, m.roundPlan.minSeconds, 0.0)
        assertEquals(34, BenchProtocol.named("quick", rounds = 3).roundPlan.minFrames)
        val j: JsonObject = BenchProtocol.MLPERF.toJson()
        assertEquals(300.0, j.getAsJsonObject("gate").get("timeout_s").asDouble, 0.0)
        try {
            BenchProtocol.named("fast")
            fail("an unknown protocol was accepted")
        } catch (e: BenchError) {
            assertEquals("unknown protocol \"fast\"; known: quick, mlperf", e.message)
        }
    }

    @Test
    fun theRequestFromAmStartExtras() {
        val r = BenchRequest.fromExtras(mapOf("artifacts" to "wide/executorch-*, wide/onnx-fp32-explicit", "rounds" to "3", "out" to "r.json"))
        assertEquals(listOf("wide/executorch-fp32-explicit", "wide/executorch-fp32-native", "wide/onnx-fp32-explicit"),
            r.select(manifest).map { it.key })
        assertEquals(3, r.protocol.rounds)
        assertEquals("custom", r.protocol.name)
        assertNull(r.minIou)  // each artifact's own floor from the manifest
        assertEquals(0.95, BenchRequest.fromExtras(mapOf("min_iou" to "0.95")).minIou!!, 0.0)
        assertEquals("r.json", r.out)
        assertEquals(manifest.artifacts, BenchRequest.fromExtras(emptyMap()).select(manifest))
        for ((extras, message) in listOf(
            mapOf("rounds" to "many") to "extra rounds \"many\" is not an integer",
            mapOf("round" to "3") to "unknown extra round; known: ",
            mapOf("out" to "../x.json") to "extra out \"../x.json\" must be a plain file name",
            mapOf("min_iou" to "1.5") to "extra min_iou 1.5 is not within (0, 1]")) {
            try {
                BenchRequest.fromExtras(extras)
                fail("$extras was accepted")
            } catch (e: BenchError) {
                assertTrue(e.message!!, e.message!!.startsWith(message))
            }
        }
        try {
            BenchRequest.fromExtras(mapOf("artifacts" to "wide/coreml-*")).select(manifest)
            fail("a pattern that matches nothing was accepted")
        } catch (e: BenchError) {
            assertTrue(e.message!!, e.message!!.startsWith("artifacts wide/coreml-* match nothing in the app's manifest"))
        }
    }

    @Test
    fun parityAgainstTheGoldensMasks() {
        val clock = FakeClock()
        val log = Log()
        val art = wide()[0]
        // the golden's expected masks: what the fake model gives, through the core
        val g = golden(masks = fakeCameraMasks(manifest, art, clock, log))
        val good = checkParity(manifest, art, g, FakeRunner(art, clock, 1.0, log))
        assertTrue(good.message(), good.passed)
        assertEquals(1.0, good.minIou, 0.0)
        assertEquals("parity wide/executorch-fp32-explicit: passed, 3 frames, min IoU 1.0000 >= 0.99 (masks at threshold 0.5)", good.message())
        val bad = checkParity(manifest, art, g, FakeRunner(art, clock, 1.0, log, invert = true))
        assertFalse(bad.passed)
        assertTrue(bad.message(), bad.minIou < 0.5)
        val broken = checkParity(manifest, art, g, FakeRunner(art, clock, 1.0, log, failAt = log.calls.size))
        assertFalse(broken.passed)
        assertEquals("parity wide/executorch-fp32-explicit: FAILED, IllegalStateException: the fake runtime failed", broken.message())
        assertEquals(1.0, iou(ByteArray(4), ByteArray(4)), 0.0)
    }

    @Test
    fun parityHoldsEachArtifactToTheFloorItsExportVerified() {
        // details.parity.thresholds.min_iou (an int8 artifact's is below float's 0.99); the min_iou extra overrides it
        val floors = Manifest.parse(manifestText.replaceFirst("\"verified\": true}",
            "\"verified\": true, \"details\": {\"parity\": {\"min_iou\": 0.93, \"thresholds\": {\"min_iou\": 0.9}}}}"))
        val (int8, plain) = floors.artifactsFor("wide").take(2)
        assertEquals(0.9, int8.parityMinIou!!, 0.0)
        assertNull(plain.parityMinIou)
        assertEquals(0.9, parityFloor(int8), 0.0)
        assertEquals(MIN_PARITY_IOU, parityFloor(plain), 0.0)
        assertEquals(0.97, parityFloor(int8, 0.97), 0.0)
        val clock = FakeClock()
        val log = Log()
        // the golden's masks: the fake model's through the core, with 10 of its person pixels taken away (IoU below
        // float's 0.99, above the int8 artifact's 0.9)
        val expected = fakeCameraMasks(floors, int8, clock, log)
        for (mask in expected) mask.indices.filter { mask[it] >= 0.5f }.take(10).forEach { mask[it] = 0f }
        val g = golden(masks = expected)
        val r = checkParity(floors, int8, g, FakeRunner(int8, clock, 1.0, log))
        assertEquals(0.9, r.required, 0.0)
        assertTrue(r.message(), r.passed && r.minIou < MIN_PARITY_IOU)
        val strict = checkParity(floors, plain, g, FakeRunner(plain, clock, 1.0, log))
        assertEquals(MIN_PARITY_IOU, strict.required, 0.0)
        assertFalse(strict.message(), strict.passed)
        val overridden = checkParity(floors, int8, g, FakeRunner(int8, clock, 1.0, log), 0.995)
        assertEquals(0.995, overridden.required, 0.0)
        assertFalse(overridden.passed)
        for (bad in listOf("1.5", "0", "\"x\"")) {
            try {
                Manifest.parse(manifestText.replaceFirst("\"verified\": true}",
                    "\"verified\": true, \"details\": {\"parity\": {\"thresholds\": {\"min_iou\": $bad}}}}"))
                fail("min_iou $bad was accepted")
            } catch (e: ManifestError) {
                assertTrue(e.message!!, e.message!!.contains("min_iou"))
            }
        }
    }

    @Test
    fun aRoundClosesItsRunner() {
        val clock = FakeClock()
        var made: FakeRunner? = null
        val log = Log()
        val load: (Artifact) -> ModelRunner = { a -> FakeRunner(a, clock, 1.0, log, failAt = 1).also { made = it } }
        val bench = BenchRunner(manifest, BenchProtocol("custom", 0, 3, 0.0, 1), mapOf("wide" to golden()), load, clock)
        try {
            bench.round(wide()[0], golden(), bench.protocol.roundPlan)
            fail("the failing runner did not fail the round")
        } catch (e: IllegalStateException) {
            assertTrue(made!!.closed)
        }
    }
    @Test
    fun anExportedGoldenPassesParityWithTheReferenceOutputs() {
        // BACKDROP_GOLDEN_DIST (default dist/android-arm64), as GoldenTest: a model that answers the
        // golden's own expected_masks in order reproduces its camera masks through the core, IoU 1.
        val dist = java.io.File(System.getenv("BACKDROP_GOLDEN_DIST") ?: "dist/android-arm64")
        val file = java.io.File(dist, "manifest.json")
        assertTrue("$file does not exist: run `make export TARGET=android-arm64` first", file.isFile)
        val m = Manifest.load(file)
        val (bucket, rel) = m.goldens.entries.first()
        val g = GoldenSequence.load(java.io.File(dist, rel))
        assertEquals(bucket, g.bucket)
        val reference = Npy.readNpz(java.io.File(dist, rel)).getValue("expected_masks")
        // the floor each verified artifact was held to at export reaches the app (int8's below float's)
        for (a in m.artifacts.filter { it.verified == true }) assertTrue(a.key, a.parityMinIou != null)
        assertTrue(m.artifacts.filter { it.precision == "int8" && it.verified == true }.all { it.parityMinIou!! < MIN_PARITY_IOU })
        for (art in m.artifactsFor(bucket).filter { it.format == "executorch" }) {
            var k = 0
            val oracle = object : ModelRunner {
                override val threads = 0
                override val runtimeVersions = emptyMap<String, String>()
                override fun run(feed: ModelFeed): ModelOutput {
                    assertEquals("frame $k's reset", g.resets[k], feed.reset)
                    val mask = reference.row(k++).floats()
                    return ModelOutput(mask, if (art.stateForm == StateForm.EXPLICIT) mask else null)
                }
                override fun close() {}
            }
            val p = checkParity(m, art, g, oracle)
            assertEquals(art.parityMinIou ?: MIN_PARITY_IOU, p.required, 0.0)
            assertTrue(p.message(), p.passed)
            assertEquals(1.0, p.minIou, 0.0)
            assertEquals(g.size, k)
        }
    }
}
