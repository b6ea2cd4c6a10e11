// The bench protocol of `backdrop bench` (backdrop/bench/protocol.py, backdrop/bench/run.py,
// device_tests/host.py python_bench_round; docs/benchmarking.md "The protocol") on the phone,
// with the clock, the model call and the device's readings injected, so that the app only
// supplies "load this artifact" and "run this feed" ([ModelRunner]) and the JVM tests drive it
// with a fake clock:
//
//   priming    one untimed one-frame round of the first artifact of each format;
//   rounds     per bucket, every artifact `rounds` times, the order rotated by one place each
//              round; before each round `cooldown_s` idle, then the thermal gate;
//   a round    load (timed), `warmup` untimed frames, then the bucket's golden camera sequence
//              in order, wrapping round, the state carried and reset where the golden resets it,
//              until the round has ceil(min_frames / rounds) frames AND min_seconds / rounds
//              seconds of end-to-end time; per frame `model` (the model call) and `e2e` (camera
//              buffer -> SegmentationStream.prepare -> model -> complete, the mask at camera size).
//
// Also here: the golden parity check the app's self-test and benchmark mode run
// (scripts/run_from_manifest.py: per-frame IoU of the masks thresholded at the manifest's
// threshold, at least 0.99), and the benchmark mode's request from `am start` extras.
package ai.backdrop.core

import com.google.gson.JsonObject
import java.io.Closeable
import java.io.File
import java.io.IOException
import java.io.InputStream

/** A protocol, request or golden that cannot be used as given. */
class BenchError(message: String) : IllegalArgumentException(message)

// ---------------------------------------------------------------------------------------------
// The protocol (protocol.py)
// ---------------------------------------------------------------------------------------------

/** protocol.py Gate: before each round, wait until no zone is hot and no CPU capped, up to timeoutS. */
class Gate(val maxTempC: Double = 45.0, val timeoutS: Double = 60.0, val pollS: Double = 1.0) {
    init {
        if (timeoutS < 0 || !(pollS > 0) || !maxTempC.isFinite()) {
            throw BenchError("a gate needs timeout_s >= 0, poll_s > 0 and a finite max_temp_c; got $maxTempC, $timeoutS, $pollS")
        }
    }
}

/** protocol.py Protocol (without `e2e`: the app always times end to end). */
class BenchProtocol(
    val name: String = "quick",
    val warmup: Int = 3,
    val minFrames: Int = 100,
    val minSeconds: Double = 1.0,
    val rounds: Int = 5,
    val cooldownS: Double = 0.0,
    val gate: Gate = Gate(),
    val threads: Int = 0
) {
    init {
        if (warmup < 0 || minFrames < 1 || !(minSeconds >= 0) || rounds < 1 || !(cooldownS >= 0)) {
            throw BenchError("a protocol needs warmup >= 0, min_frames >= 1, min_seconds >= 0, rounds >= 1 and cooldown_s >= 0; " +
                "got warmup=$warmup, min_frames=$minFrames, min_seconds=$minSeconds, rounds=$rounds, cooldown_s=$cooldownS")
        }
        if (threads < 0) throw BenchError("threads must be >= 0 (0: the runtime's default); got $threads")
    }

    /** protocol.py round_plan: one round's share of the frames and seconds. */
    val roundPlan: RoundPlan get() = RoundPlan(warmup, (minFrames + rounds - 1) / rounds, minSeconds / rounds)

    /** protocol.py Protocol.to_dict: the document's run.protocol. */
    fun toJson(): JsonObject {
        val o = JsonObject()
        o.addProperty("name", name)
        o.addProperty("warmup", warmup)
        o.addProperty("min_frames", minFrames)
        o.addProperty("min_seconds", minSeconds)
        o.addProperty("rounds", rounds)
        o.addProperty("cooldown_s", cooldownS)
        val g = JsonObject()
        g.addProperty("max_temp_c", gate.maxTempC)
        g.addProperty("timeout_s", gate.timeoutS)
        o.add("gate", g)
        o.addProperty("threads", threads)
        o.addProperty("frames", FRAMES)
        return o
    }

    companion object {
        const val FRAMES = "each bucket's golden sequence bundled with the app (camera buffers as an app receives them), " +
            "in order, wrapping round, the state carried and reset where the golden resets it"

        val QUICK = BenchProtocol()

        /** MLPerf Mobile's single-stream rule: >= 1024 queries and >= 60 s per result. */
        val MLPERF = BenchProtocol("mlperf", warmup = 10, minFrames = 1024, minSeconds = 60.0, rounds = 8, cooldownS = 10.0,
            gate = Gate(45.0, 300.0))

        private val NAMED = linkedMapOf("quick" to QUICK, "mlperf" to MLPERF)

        /**
         * protocol.py protocol_named: the protocol [name] with the given fields replaced (null
         * leaves a field as it is); a replacement that changes a value renames it "custom".
         */
        fun named(name: String, warmup: Int? = null, minFrames: Int? = null, minSeconds: Double? = null, rounds: Int? = null,
                  cooldownS: Double? = null, maxTempC: Double? = null, gateTimeoutS: Double? = null, threads: Int? = null): BenchProtocol {
            val base = NAMED[name] ?: throw BenchError("unknown protocol \"$name\"; known: ${NAMED.keys.joinToString()}")
            val p = BenchProtocol(base.name, warmup ?: base.warmup, minFrames ?: base.minFrames, minSeconds ?: base.minSeconds,
                rounds ?: base.rounds, cooldownS ?: base.cooldownS,
                Gate(maxTempC ?: base.gate.maxTempC, gateTimeoutS ?: base.gate.timeoutS, base.gate.pollS), threads ?: base.threads)
            val changed = p.warmup != base.warmup || p.minFrames != base.minFrames || p.minSeconds != base.minSeconds ||
                p.rounds != base.rounds || p.cooldownS != base.cooldownS || p.gate.maxTempC != base.gate.maxTempC ||
                p.gate.timeoutS != base.gate.timeoutS || p.threads != base.threads
            return if (!changed) base else BenchProtocol("custom", p.warmup, p.minFrames, p.minSeconds, p.rounds, p.cooldownS, p.gate, p.threads)
        }
    }
}

/** device_tests/base.py BenchPlan: one round of one artifact. */
class RoundPlan(val warmup: Int, val minFrames: Int, val minSeconds: Double)

// ---------------------------------------------------------------------------------------------
// What the app injects
// ---------------------------------------------------------------------------------------------

/** Time as the bench sees it; [SystemBenchClock] on a phone, a fake in tests. */
interface BenchClock {
    /** Monotonic nanoseconds (System.nanoTime). */
    fun nanoTime(): Long

    /** Wall time in ms since the epoch (started_at / finished_at). */
    fun currentTimeMillis(): Long

    /** Idle for [seconds] (cooldown, gate polling). */
    fun sleep(seconds: Double)
}

object SystemBenchClock : BenchClock {
    override fun nanoTime(): Long = System.nanoTime()
    override fun currentTimeMillis(): Long = System.currentTimeMillis()
    override fun sleep(seconds: Double) {
        if (seconds > 0) Thread.sleep(Math.round(seconds * 1000.0))
    }
}

/** The model's outputs for one feed: `mask` (1, 1, Hb, Wb) and, explicit state form only, `next_mask`. */
class ModelOutput(val mask: FloatArray, val nextMask: FloatArray? = null)

/**
 * One artifact loaded into its runtime (the app's ExecuTorch or ONNX Runtime code). [run] is the
 * model call alone: the feed's `input` and, per its state form, `prevMask` or `resetFlag`, bound
 * in the manifest's input order (ExecuTorch by position, ONNX Runtime by name).
 */
interface ModelRunner : Closeable {
    /** Threads the runtime runs with; 0 when it cannot say. */
    val threads: Int

    /** Runtime package -> version, e.g. "executorch-android" -> "1.5.1". */
    val runtimeVersions: Map<String, String>

    fun run(feed: ModelFeed): ModelOutput
}

/** The process's resident memory, or nulls where the platform does not say. */
interface MemoryProbe {
    /** What the figures are, in words (the document's memory.kind). */
    val kind: String

    /** Resident memory now, MB. */
    fun residentMb(): Double?

    /** Reset the peak to the current resident memory; false when the platform refuses. */
    fun resetPeak(): Boolean

    /** The peak since the last reset, MB. */
    fun peakMb(): Double?
}

/** Linux's /proc/self/status VmRSS / VmHWM and /proc/self/clear_refs (device_tests/host.py does the same). */
class ProcStatusMemory(private val proc: File = File("/proc/self")) : MemoryProbe {
    override val kind = "process peak RSS (Linux VmHWM, reset before the load; the app's whole process: ART, the app and the runtimes)"

    override fun residentMb(): Double? = field("VmRSS")
    override fun peakMb(): Double? = field("VmHWM")

    override fun resetPeak(): Boolean = try {
        File(proc, "clear_refs").writeText("5")
        true
    } catch (e: IOException) {
        false
    } catch (e: SecurityException) {
        false
    }

    private fun field(name: String): Double? = try {
        File(proc, "status").readLines().firstOrNull { it.startsWith("$name:") }
            ?.substringAfter(':')?.trim()?.split(Regex("\\s+"))?.firstOrNull()?.toDoubleOrNull()?.let { it / 1024.0 }
    } catch (e: IOException) {
        null
    }
}

/** The CPU this thread last ran on, from /proc/thread-self/stat field 39 (host.py _current_cpu); null off Linux. */
fun currentCpu(): Int? = try {
    File("/proc/thread-self/stat").readText().substringAfterLast(')').trim().split(' ').getOrNull(36)?.toIntOrNull()
} catch (e: IOException) {
    null
}

// ---------------------------------------------------------------------------------------------
// The golden sequence
// ---------------------------------------------------------------------------------------------

/**
 * One bucket's golden sequence (export/goldens.py): packed NV21 / NV12 camera buffers in
 * order, the frames before which the state is reset, and the reference probability mapped back
 * to each camera frame.
 */
class GoldenSequence(
    val bucket: String,
    val cameraFormat: String,
    val width: Int,
    val height: Int,
    val buffers: List<ByteArray>,
    val resets: BooleanArray,
    /** float32 (height * width) per frame; empty when not needed (timing only). */
    val expectedCameraMasks: List<FloatArray> = emptyList()
) {
    init {
        if (buffers.isEmpty()) throw BenchError("golden $bucket has no frames")
        if (resets.size != buffers.size) throw BenchError("golden $bucket: ${resets.size} resets for ${buffers.size} frames")
        if (!resets[0]) throw BenchError("golden $bucket: the state must be reset at frame 0")
        if (cameraFormat != "nv21" && cameraFormat != "nv12") throw BenchError("golden $bucket: camera format $cameraFormat is not nv21 or nv12")
        if (expectedCameraMasks.isNotEmpty() && expectedCameraMasks.size != buffers.size) {
            throw BenchError("golden $bucket: ${expectedCameraMasks.size} expected masks for ${buffers.size} frames")
        }
    }

    val size: Int get() = buffers.size

    /** Frame [index] as the camera would hand it over (a view of the buffer, no copy). */
    fun frame(index: Int): Yuv420Frame =
        if (cameraFormat == "nv21") Yuv420Frame.nv21(buffers[index], width, height) else Yuv420Frame.nv12(buffers[index], width, height)

    companion object {
        /** A golden .npz (the keys of export/goldens.py's docstring). */
        fun load(file: File): GoldenSequence {
            val z = try {
                Npy.readNpz(file)
            } catch (e: IOException) {
                throw BenchError("cannot read golden $file: ${e.message}")
            }
            fun need(key: String): NpyArray = z[key] ?: throw BenchError("golden $file has no $key")
            val size = need("camera_size").longs()
            if (size.size != 2) throw BenchError("golden $file: camera_size has ${size.size} values, not 2")
            val h = size[0].toInt()
            val w = size[1].toInt()
            val buffers = need("camera_buffers")
            val n = buffers.shape[0]
            val masks = z["expected_camera_masks"]
            return GoldenSequence(need("bucket_name").string(), need("camera_format").string(), w, h,
                (0 until n).map { buffers.row(it).bytes() }, need("resets").booleans(),
                if (masks == null) emptyList() else (0 until n).map { masks.row(it).floats() })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The schedule and the rounds (run.py, host.py)
// ---------------------------------------------------------------------------------------------

/** What one round measured (device_tests/base.py RoundTimings), ms per timed frame in order. */
class RoundTimings(
    val loadMs: Double,
    val modelMs: DoubleArray,
    val e2eMs: DoubleArray,
    val threads: Int = 0,
    val cores: Map<Int, Int> = emptyMap(),
    val peakRssMb: Double? = null,
    val baselineRssMb: Double? = null,
    val memoryKind: String = ""
)

/** protocol.py GateCheck: what the gate saw before one round. */
class GateCheck(val round: Int, val waitedS: Double, val timedOut: Boolean, val readings: Map<String, Double>) {
    fun toJson(): JsonObject {
        val o = JsonObject()
        o.addProperty("round", round)
        o.addProperty("waited_s", round3(waitedS))
        o.addProperty("timed_out", timedOut)
        val r = JsonObject()
        for ((k, v) in readings) r.addProperty(k, v)
        o.add("readings", r)
        return o
    }
}

/** [value] formatted with [pattern] the same in every locale (a phone's may write 0,99). */
internal fun fmt(pattern: String, value: Double): String = String.format(java.util.Locale.ROOT, pattern, value)

/** protocol.py gate_blockers: why a round may not start yet (empty when it may). */
fun gateBlockers(readings: Map<String, Double>, gate: Gate): List<String> {
    val out = ArrayList<String>()
    for ((k, v) in readings) {
        if (k.startsWith("temp_c:") && v >= gate.maxTempC) out.add("${k.substringAfter(':')} ${fmt("%.1f", v)} C")
    }
    for ((k, cap) in readings) {
        if (!k.startsWith("cap_mhz:")) continue
        val cpu = k.substringAfter(':')
        val top = readings["max_mhz:$cpu"] ?: continue
        if (cap < top * 0.999) out.add("$cpu capped at ${fmt("%.0f", cap)} of ${fmt("%.0f", top)} MHz")
    }
    return out
}

/** protocol.py wait_for_gate: poll [read] until nothing blocks or gate.timeoutS has passed. */
fun waitForGate(read: () -> Map<String, Double>, gate: Gate, round: Int, clock: BenchClock): GateCheck {
    val start = clock.nanoTime()
    while (true) {
        val readings = read()
        val waited = (clock.nanoTime() - start) / 1e9
        if (gateBlockers(readings, gate).isEmpty()) return GateCheck(round, waited, false, readings)
        if (waited >= gate.timeoutS) return GateCheck(round, waited, true, readings)
        val s = minOf(gate.pollS, maxOf(gate.timeoutS - waited, 0.0))
        clock.sleep(if (s == 0.0) gate.pollS else s)
    }
}

/** One turn of the schedule: [member] runs its round [round]. */
class Turn<T>(val round: Int, val member: T)

/**
 * run.py's order: group by group (a bucket's artifacts), round by round, the members rotated
 * by one place each round, so every member takes every place equally often.
 */
fun <T> benchSchedule(groups: List<List<T>>, rounds: Int): List<Turn<T>> {
    val out = ArrayList<Turn<T>>()
    for (members in groups) {
        if (members.isEmpty()) continue
        for (r in 0 until rounds) {
            val s = r % members.size
            for (m in members.subList(s, members.size) + members.subList(0, s)) out.add(Turn(r, m))
        }
    }
    return out
}

/** One artifact's rounds, gate checks and, when a round failed, why (later rounds are skipped). */
class ArtifactRun(val artifact: Artifact, val rounds: List<RoundTimings>, val gates: List<GateCheck>, val failure: String?,
                  val runtimeVersions: Map<String, String>)

/** A whole bench: what [ResultsDocument.build] writes. */
class BenchRun(val startedAtMillis: Long, val finishedAtMillis: Long, val protocol: BenchProtocol, val results: List<ArtifactRun>,
               val notes: List<String>)

/**
 * The bench protocol over [goldens] (bucket name -> sequence). [load] puts an artifact into its
 * runtime; it and [ModelRunner.run] are the only calls into the app's runtimes.
 */
class BenchRunner(
    val manifest: Manifest,
    val protocol: BenchProtocol,
    val goldens: Map<String, GoldenSequence>,
    val load: (Artifact) -> ModelRunner,
    val clock: BenchClock = SystemBenchClock,
    val gateReadings: () -> Map<String, Double> = { emptyMap() },
    val memory: MemoryProbe? = null,
    val cpu: () -> Int? = { null },
    val colorRange: ColorRange = ColorRange.FULL,
    /** Called after each turn: (artifact key, turns done, turns in all). */
    val progress: (String, Int, Int) -> Unit = { _, _, _ -> }
) {
    private class Member(val artifact: Artifact) {
        val rounds = ArrayList<RoundTimings>()
        val gates = ArrayList<GateCheck>()
        var failure: String? = null
        var versions: Map<String, String> = emptyMap()
    }

    fun run(artifacts: List<Artifact>): BenchRun {
        if (artifacts.isEmpty()) throw BenchError("no artifact to bench")
        val notes = ArrayList<String>()
        val groups = LinkedHashMap<String, MutableList<Member>>()
        for (a in artifacts) {
            if (goldens[a.bucket] == null) {
                notes.add("skipped ${a.key}: no golden for bucket ${a.bucket} in the app (make android-demo bundles one bucket's)")
                continue
            }
            groups.getOrPut(a.bucket) { ArrayList() }.add(Member(a))
        }
        if (groups.isEmpty()) throw BenchError("none of ${artifacts.joinToString { it.key }} has a golden to run: " + notes.joinToString("; "))
        prime(groups.values.flatten())
        val plan = protocol.roundPlan
        val turns = benchSchedule(groups.values.toList(), protocol.rounds)
        val started = clock.currentTimeMillis()
        for ((done, turn) in turns.withIndex()) {
            val m = turn.member
            if (m.failure == null) {
                if (protocol.cooldownS > 0) clock.sleep(protocol.cooldownS)
                m.gates.add(waitForGate(gateReadings, protocol.gate, turn.round, clock))
                try {
                    m.rounds.add(round(m.artifact, goldens.getValue(m.artifact.bucket), plan) { m.versions = it })
                } catch (e: RuntimeException) {  // the runtime's own exceptions, PreprocessError, ...
                    m.failure = "${e.javaClass.simpleName}: ${e.message}"
                }
            }
            progress(m.artifact.key, done + 1, turns.size)
        }
        val finished = clock.currentTimeMillis()
        val results = groups.values.flatten().map { ArtifactRun(it.artifact, it.rounds, it.gates, it.failure, it.versions) }
        return BenchRun(started, finished, protocol, results, notes)
    }

    /** run.py _prime: one untimed one-frame round of the first artifact of each format; failures are left to the timed rounds. */
    private fun prime(members: List<Member>) {
        val seen = HashSet<String>()
        for (m in members) {
            if (!seen.add(m.artifact.format)) continue
            try {
                round(m.artifact, goldens.getValue(m.artifact.bucket), RoundPlan(0, 1, 0.0)) { }
            } catch (e: RuntimeException) {
                // the timed round reports it
            }
        }
    }

    /** One round (host.py python_bench_round). */
    fun round(artifact: Artifact, golden: GoldenSequence, plan: RoundPlan, versions: (Map<String, String>) -> Unit = { }): RoundTimings {
        val baseline = memory?.residentMb()
        val peakKnown = memory?.resetPeak() ?: false
        val t0 = clock.nanoTime()
        val runner = load(artifact)
        val loadMs = (clock.nanoTime() - t0) / 1e6
        try {
            versions(runner.runtimeVersions)
            val stream = SegmentationStream(manifest, colorRange) { artifact }
            for (w in 0 until plan.warmup) {
                stream.reset()
                val feed = stream.prepare(golden.frame(0))
                val out = runner.run(feed)
                stream.complete(feed, out.mask, out.nextMask)
            }
            stream.reset()
            val model = ArrayList<Double>()
            val e2e = ArrayList<Double>()
            val cores = LinkedHashMap<Int, Int>()
            var timedMs = 0.0
            var i = 0
            while (model.size < plan.minFrames || timedMs < plan.minSeconds * 1e3) {
                val k = i % golden.size
                if (k == 0 || golden.resets[k]) stream.sceneCut()
                val tFrame = clock.nanoTime()
                val feed = stream.prepare(golden.frame(k))
                val tModel = clock.nanoTime()
                val out = runner.run(feed)
                val tDone = clock.nanoTime()
                stream.complete(feed, out.mask, out.nextMask)
                val tEnd = clock.nanoTime()
                model.add((tDone - tModel) / 1e6)
                e2e.add((tEnd - tFrame) / 1e6)
                timedMs += e2e[e2e.size - 1]
                val c = cpu()
                if (c != null) cores[c] = (cores[c] ?: 0) + 1
                i++
            }
            val peak = if (peakKnown) memory?.peakMb() else null
            return RoundTimings(loadMs, model.toDoubleArray(), e2e.toDoubleArray(), runner.threads, cores, peak,
                if (peak != null) baseline else null, if (peak != null) memory!!.kind else "")
        } finally {
            runner.close()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parity against the golden (scripts/run_from_manifest.py)
// ---------------------------------------------------------------------------------------------

/** The floor for an artifact whose manifest entry names none (scripts/run_from_manifest.py's 0.99); an
 *  artifact the export verified is held to its own `details.parity.thresholds.min_iou` ([Artifact.parityMinIou]). */
const val MIN_PARITY_IOU = 0.99

/** What [checkParity] holds [artifact] to: [override] (the min_iou extra) when given, else the floor the
 *  export verified it to, else [MIN_PARITY_IOU]. */
fun parityFloor(artifact: Artifact, override: Double? = null): Double = override ?: artifact.parityMinIou ?: MIN_PARITY_IOU

/** One artifact over one golden: the worst frame's IoU and whether every frame reached [minIou]. */
class ParityResult(val key: String, val frames: Int, val minIou: Double, val worstFrame: Int, val threshold: Double,
                   val required: Double, val error: String?) {
    val passed: Boolean get() = error == null && minIou >= required

    /** One line for the screen, the log and the document's notes. */
    fun message(): String = when {
        error != null -> "parity $key: FAILED, $error"
        passed -> "parity $key: passed, $frames frames, min IoU ${fmt("%.4f", minIou)} >= $required (masks at threshold $threshold)"
        else -> "parity $key: FAILED, frame $worstFrame IoU ${fmt("%.4f", minIou)} < $required of $frames frames"
    }
}

/** IoU of two binary masks (1.0 when both are empty, as run_from_manifest.py). */
fun iou(a: ByteArray, b: ByteArray): Double {
    if (a.size != b.size) throw BenchError("IoU of masks of ${a.size} and ${b.size} values")
    var inter = 0L
    var union = 0L
    for (i in a.indices) {
        val x = a[i].toInt() != 0
        val y = b[i].toInt() != 0
        if (x && y) inter++
        if (x || y) union++
    }
    return if (union == 0L) 1.0 else inter.toDouble() / union
}

/**
 * Run [artifact] over [golden] through [runner] and the core, the state reset where the golden
 * resets it, and compare each camera-size mask with the golden's expected one, both thresholded
 * at the manifest's threshold.
 */
fun checkParity(manifest: Manifest, artifact: Artifact, golden: GoldenSequence, runner: ModelRunner,
                minIouOverride: Double? = null): ParityResult {
    val minIou = parityFloor(artifact, minIouOverride)
    if (golden.expectedCameraMasks.isEmpty()) throw BenchError("golden ${golden.bucket} has no expected_camera_masks")
    val threshold = manifest.threshold.toFloat()
    val stream = SegmentationStream(manifest) { artifact }
    var worst = Double.POSITIVE_INFINITY
    var worstFrame = 0
    try {
        for (k in 0 until golden.size) {
            if (golden.resets[k]) stream.sceneCut()
            val feed = stream.prepare(golden.frame(k))
            val out = runner.run(feed)
            val mask = stream.complete(feed, out.mask, out.nextMask)
            val score = iou(binaryMask(mask, threshold), binaryMask(golden.expectedCameraMasks[k], threshold))
            if (score < worst) {
                worst = score
                worstFrame = k
            }
        }
    } catch (e: RuntimeException) {
        return ParityResult(artifact.key, golden.size, 0.0, 0, manifest.threshold, minIou, "${e.javaClass.simpleName}: ${e.message}")
    }
    return ParityResult(artifact.key, golden.size, worst, worstFrame, manifest.threshold, minIou, null)
}

// ---------------------------------------------------------------------------------------------
// The benchmark mode's request (am start extras) and the app's bundle
// ---------------------------------------------------------------------------------------------

/**
 * What `adb shell am start -n ai.backdrop.demo/.BenchmarkActivity ...` asks for; the app passes
 * its intent extras as strings (an `--ei` value as its decimal text).
 *
 * Extras: artifacts (comma-separated keys or globs with `*`, default every bundled artifact),
 * protocol (quick | mlperf), rounds, warmup, min_frames, min_seconds, cooldown_s, max_temp_c,
 * gate_timeout_s, threads, min_iou, out (file name under the app's external files dir).
 */
class BenchRequest(val artifacts: List<String>, val protocol: BenchProtocol, val minIou: Double?, val out: String) {
    /** The manifest's artifacts this request names, in manifest order. */
    fun select(manifest: Manifest): List<Artifact> {
        if (artifacts.isEmpty()) return manifest.artifacts
        val chosen = manifest.artifacts.filter { a -> artifacts.any { globMatch(it, a.key) || globMatch(it, a.path) } }
        val unmatched = artifacts.filter { p -> manifest.artifacts.none { globMatch(p, it.key) || globMatch(p, it.path) } }
        if (unmatched.isNotEmpty()) {
            throw BenchError("artifacts ${unmatched.joinToString()} match nothing in the app's manifest; it has " +
                manifest.artifacts.joinToString { it.key })
        }
        return chosen
    }

    companion object {
        val KNOWN = listOf("artifacts", "protocol", "rounds", "warmup", "min_frames", "min_seconds", "cooldown_s", "max_temp_c",
            "gate_timeout_s", "threads", "min_iou", "out")

        /** Throws [BenchError] naming the extra for a value that does not parse or an extra it does not know. */
        fun fromExtras(extras: Map<String, String>): BenchRequest {
            val unknown = extras.keys.filter { it !in KNOWN }
            if (unknown.isNotEmpty()) throw BenchError("unknown extra ${unknown.joinToString()}; known: ${KNOWN.joinToString()}")
            fun int(name: String): Int? = extras[name]?.let { it.trim().toIntOrNull() ?: throw BenchError("extra $name \"$it\" is not an integer") }
            fun num(name: String): Double? = extras[name]?.let {
                val v = it.trim().toDoubleOrNull()
                if (v == null || !v.isFinite()) throw BenchError("extra $name \"$it\" is not a number")
                v
            }
            val protocol = BenchProtocol.named(extras["protocol"] ?: "quick", warmup = int("warmup"), minFrames = int("min_frames"),
                minSeconds = num("min_seconds"), rounds = int("rounds"), cooldownS = num("cooldown_s"), maxTempC = num("max_temp_c"),
                gateTimeoutS = num("gate_timeout_s"), threads = int("threads"))
            val minIou = num("min_iou")  // null: each artifact's own floor from the manifest (parityFloor)
            if (minIou != null && !(minIou > 0 && minIou <= 1)) throw BenchError("extra min_iou $minIou is not within (0, 1]")
            val out = extras["out"] ?: "backdrop-results.json"
            if (out.length == 0 || out.contains('/') || out.startsWith(".")) throw BenchError("extra out \"$out\" must be a plain file name")
            val keys = (extras["artifacts"] ?: "").split(',').map { it.trim() }.filter { it.isNotEmpty() }
            return BenchRequest(keys, protocol, minIou, out)
        }

        /** Shell-style `*` and `?` over the whole text (fnmatch as run.py's --artifacts, without [...] sets). */
        fun globMatch(pattern: String, text: String): Boolean {
            val sb = StringBuilder()
            for (ch in pattern) {
                when (ch) {
                    '*' -> sb.append(".*")
                    '?' -> sb.append('.')
                    else -> sb.append(Regex.escape(ch.toString()))
                }
            }
            return Regex(sb.toString()).matches(text)
        }
    }
}

/**
 * Copy the bundle `make android-demo` put into the app's assets (manifest.json, every artifact at
 * its manifest path, the goldens) into [dest], checking each artifact's sha256 against the
 * manifest: runtimes load files by path. A file already there with the right sha256 is kept.
 * [open] opens an asset by its path relative to the bundle (AssetManager.open("backdrop/$it")).
 */
fun installBundle(open: (String) -> InputStream, dest: File): Manifest {
    dest.mkdirs()
    val manifestText = open("manifest.json").use { String(it.readBytes(), Charsets.UTF_8) }
    val manifest = Manifest.parse(manifestText)
    fun copy(rel: String, expectedSha: String?) {
        val target = File(dest, rel)
        if (target.isFile && expectedSha != null && sha256Hex(target) == expectedSha) return
        target.parentFile?.mkdirs()
        val tmp = File(target.path + ".tmp")
        open(rel).use { input -> tmp.outputStream().use { input.copyTo(it) } }
        if (expectedSha != null) {
            val got = sha256Hex(tmp)
            if (got != expectedSha) {
                tmp.delete()
                throw BenchError("$rel in the app's assets has sha256 $got; the manifest says $expectedSha. Run `make android-demo` again.")
            }
        }
        if (!tmp.renameTo(target)) throw IOException("cannot rename $tmp to $target")
    }
    for (a in manifest.artifacts) copy(a.path, a.sha256)
    for ((bucket, rel) in manifest.goldens) copy(rel, manifest.goldenSha256[bucket])
    File(dest, "manifest.json").writeText(manifestText, Charsets.UTF_8)
    return manifest
}
