// The results document of a benchmark run (format "backdrop-results" 1.0, the schema
// backdrop/schemas/results.schema.json, docs/benchmarking.md) as the app's benchmark mode writes
// it for `backdrop results import`, built with Gson from what BenchRunner (BenchProtocol.kt)
// measured; and the statistics of latency samples, computed as backdrop/bench/stats.py does.
//
// The document carries raw samples only (the schema has no field for a statistic, and the store
// recomputes every statistic from the samples on import). [LatencyStats] is for what the app
// shows on screen and in its log; it reproduces stats.summarize bit for bit, the bootstrap
// interval of the median included: numpy's default_rng(0) (SeedSequence -> PCG64, Lemire's
// bounded integers) is reimplemented in [NumpyPcg64], and sums use numpy's pairwise summation.
// tests/test_android_results.py holds it to stats.py on the same samples.
package ai.backdrop.core

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonNull
import com.google.gson.JsonObject
import com.google.gson.JsonPrimitive
import java.io.File
import java.io.IOException
import java.math.BigDecimal
import java.math.RoundingMode
import java.security.MessageDigest
import java.time.Instant
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter

/** A results document that cannot be written as asked (a missing field, a bad sample). */
class ResultsError(message: String) : IllegalArgumentException(message)

const val RESULTS_FORMAT = "backdrop-results"
const val RESULTS_FORMAT_VERSION = "1.0"

/** What this app calls itself in `run.source`. */
const val BENCH_SOURCE = "android_demo benchmark mode"

// ---------------------------------------------------------------------------------------------
// Statistics (backdrop/bench/stats.py)
// ---------------------------------------------------------------------------------------------

/** stats.py BOOTSTRAP_RESAMPLES: resamples of the median's bootstrap interval. */
const val BOOTSTRAP_RESAMPLES = 2000

/** stats.py TRIM: fraction cut from each side for the trimmed mean. */
const val TRIM = 0.10

/** stats.py Stats: one metric's samples summarised (milliseconds, but n and cv). */
data class Stats(
    val n: Int,
    val p50: Double,
    val p90: Double,
    val p99: Double,
    val trimmedMean: Double,
    val min: Double,
    val max: Double,
    val mean: Double,
    val cv: Double,
    val medianCiLow: Double,
    val medianCiHigh: Double
) {
    /** The fields under stats.py's names (Stats.to_dict). */
    fun toJson(): JsonObject {
        val o = JsonObject()
        o.addProperty("n", n)
        o.addProperty("p50", p50)
        o.addProperty("p90", p90)
        o.addProperty("p99", p99)
        o.addProperty("trimmed_mean", trimmedMean)
        o.addProperty("min", min)
        o.addProperty("max", max)
        o.addProperty("mean", mean)
        o.addProperty("cv", cv)
        o.addProperty("median_ci_low", medianCiLow)
        o.addProperty("median_ci_high", medianCiHigh)
        return o
    }
}

/**
 * stats.py in Kotlin, with numpy's exact arithmetic: percentiles by numpy's default "linear"
 * method (virtual index (n - 1) * q, its _lerp), sums by numpy's pairwise summation, the
 * median as numpy takes it, the standard deviation with ddof = 1 as numpy's _var computes it.
 */
object LatencyStats {
    /** stats.summarize. Throws [ResultsError] for no samples, or a negative or non-finite one. */
    fun summarize(samples: DoubleArray): Stats {
        check(samples)
        val sorted = samples.copyOf()
        java.util.Arrays.sort(sorted)
        val n = samples.size
        val mean = pairwiseSum(samples, 0, n) / n
        val cv = if (n > 1 && mean > 0) Math.sqrt(sumOfSquaredDeviations(samples, mean) / (n - 1)) / mean else 0.0
        val (low, high) = medianInterval(samples)
        return Stats(n, percentileOfSorted(sorted, 50.0), percentileOfSorted(sorted, 90.0), percentileOfSorted(sorted, 99.0),
            trimmedMeanOfSorted(sorted), sorted[0], sorted[n - 1], mean, cv, low, high)
    }

    /** stats.trimmed_mean: the mean after dropping floor(trim * n) samples from each end. */
    fun trimmedMean(samples: DoubleArray, trim: Double = TRIM): Double {
        check(samples)
        val sorted = samples.copyOf()
        java.util.Arrays.sort(sorted)
        return trimmedMeanOfSorted(sorted, trim)
    }

    /**
     * stats.median_interval: the bootstrap 95 % interval of the median (percentile method),
     * [resamples] resamples with replacement drawn exactly as numpy's
     * `default_rng(seed).integers(0, n, size=(resamples, n))`, in the samples' own order.
     */
    fun medianInterval(samples: DoubleArray, resamples: Int = BOOTSTRAP_RESAMPLES, seed: Int = 0): Pair<Double, Double> {
        check(samples)
        val n = samples.size
        if (n == 1) return Pair(samples[0], samples[0])
        if (resamples < 1) throw ResultsError("a bootstrap needs at least one resample; got $resamples")
        val rng = NumpyPcg64(seed)
        val draw = DoubleArray(n)
        val medians = DoubleArray(resamples)
        for (r in 0 until resamples) {
            for (i in 0 until n) draw[i] = samples[rng.below(n)]
            java.util.Arrays.sort(draw)
            medians[r] = medianOfSorted(draw)
        }
        java.util.Arrays.sort(medians)
        return Pair(percentileOfSorted(medians, 2.5), percentileOfSorted(medians, 97.5))
    }

    /** numpy.percentile(x, p) (method "linear") of ascending [sorted]. */
    fun percentileOfSorted(sorted: DoubleArray, p: Double): Double {
        val n = sorted.size
        if (n == 0) throw ResultsError("no samples to take a percentile of")
        val q = p / 100.0  // np.true_divide(q, 100)
        val virtual = (n - 1) * q
        if (virtual >= n - 1) return sorted[n - 1]
        if (virtual < 0) return sorted[0]
        val previous = Math.floor(virtual)
        val i = previous.toInt()
        val gamma = virtual - previous
        val a = sorted[i]
        val b = sorted[i + 1]
        val diff = b - a
        return if (gamma >= 0.5) b - diff * (1 - gamma) else a + diff * gamma  // numpy's _lerp
    }

    /** numpy.median of ascending [sorted]: the middle value, or the mean of the two middle ones. */
    fun medianOfSorted(sorted: DoubleArray): Double {
        val n = sorted.size
        return if (n % 2 == 1) sorted[n / 2] else (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }

    /**
     * numpy's pairwise summation of a[lo until lo + n] (pairwise_sum_DOUBLE: below 8 values one
     * by one, up to 128 with 8 accumulators, above that split in halves rounded to 8).
     */
    fun pairwiseSum(a: DoubleArray, lo: Int, n: Int): Double {
        if (n < 8) {
            var res = 0.0
            for (i in 0 until n) res += a[lo + i]
            return res
        }
        if (n <= 128) {
            val r = DoubleArray(8) { a[lo + it] }
            var i = 8
            val end = n - n % 8
            while (i < end) {
                for (k in 0 until 8) r[k] += a[lo + i + k]
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while (i < n) {
                res += a[lo + i]
                i++
            }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2)
    }

    private fun trimmedMeanOfSorted(sorted: DoubleArray, trim: Double = TRIM): Double {
        val n = sorted.size
        val k = Math.floor(trim * n).toInt()
        return pairwiseSum(sorted, k, n - 2 * k) / (n - 2 * k)
    }

    private fun sumOfSquaredDeviations(x: DoubleArray, mean: Double): Double {
        val d = DoubleArray(x.size) { val v = x[it] - mean; v * v }
        return pairwiseSum(d, 0, d.size)
    }

    private fun check(samples: DoubleArray) {
        if (samples.isEmpty()) throw ResultsError("no samples to summarise.")
        for (v in samples) {
            if (!v.isFinite() || v < 0) throw ResultsError("latency samples must be finite and >= 0; got $v.")
        }
    }
}

/**
 * numpy.random.default_rng(seed) as the bootstrap uses it: SeedSequence(seed) -> PCG64
 * (128-bit LCG, XSL-RR output), 32-bit draws taken from each 64-bit output low half first, and
 * `integers(0, n)` by Lemire's bounded method with rejection (numpy's
 * buffered_bounded_lemire_uint32, used for ranges below 2^32).
 */
class NumpyPcg64(seed: Int) {
    private var stateHi = 0L
    private var stateLo = 0L
    private val incHi: Long
    private val incLo: Long
    private var hasHalf = false
    private var half = 0L

    init {
        if (seed < 0) throw ResultsError("seed $seed is negative")
        val words = seedSequenceState(seed, 8)
        fun u64(i: Int): Long = (words[2 * i].toLong() and MASK32) or (words[2 * i + 1].toLong() shl 32)
        val initHi = u64(0)
        val initLo = u64(1)
        val seqHi = u64(2)
        val seqLo = u64(3)
        // inc = (initseq << 1) | 1
        incHi = (seqHi shl 1) or (seqLo ushr 63)
        incLo = (seqLo shl 1) or 1L
        step()
        addToState(initHi, initLo)
        step()
    }

    /** The next 64-bit output (as Long bits). */
    fun nextLong(): Long {
        step()
        val x = stateHi xor stateLo
        val rot = (stateHi ushr 58).toInt()
        return java.lang.Long.rotateRight(x, rot)
    }

    /** The next 32-bit draw, 0 until 2^32 (numpy's pcg64_next32). */
    fun nextUInt32(): Long {
        if (hasHalf) {
            hasHalf = false
            return half
        }
        val next = nextLong()
        hasHalf = true
        half = next ushr 32
        return next and MASK32
    }

    /** `integers(0, n)` for 1 <= n <= 2^31 - 1. */
    fun below(n: Int): Int {
        if (n < 1) throw ResultsError("integers(0, $n) needs n >= 1")
        if (n == 1) return 0
        val excl = n.toLong()
        var m = nextUInt32() * excl
        var leftover = m and MASK32
        if (leftover < excl) {
            val threshold = (MASK32 - (excl - 1)) % excl
            while (leftover < threshold) {
                m = nextUInt32() * excl
                leftover = m and MASK32
            }
        }
        return (m ushr 32).toInt()
    }

    private fun step() {
        // state = state * MULT + inc (mod 2^128)
        val lo = stateLo * MULT_LO
        val hi = mulHighUnsigned(stateLo, MULT_LO) + stateLo * MULT_HI + stateHi * MULT_LO
        stateLo = lo
        stateHi = hi
        addToState(incHi, incLo)
    }

    private fun addToState(hi: Long, lo: Long) {
        val sum = stateLo + lo
        val carry = if ((sum xor Long.MIN_VALUE) < (stateLo xor Long.MIN_VALUE)) 1L else 0L
        stateLo = sum
        stateHi = stateHi + hi + carry
    }

    companion object {
        private const val MASK32 = 0xFFFFFFFFL
        private const val MULT_HI = 2549297995355413924L
        private const val MULT_LO = 4865540595714422341L

        /** The high 64 bits of the unsigned 128-bit product a * b. */
        internal fun mulHighUnsigned(a: Long, b: Long): Long {
            val a0 = a and MASK32
            val a1 = a ushr 32
            val b0 = b and MASK32
            val b1 = b ushr 32
            val p00 = a0 * b0
            val p01 = a0 * b1
            val p10 = a1 * b0
            val p11 = a1 * b1
            val middle = (p00 ushr 32) + (p01 and MASK32) + (p10 and MASK32)
            return p11 + (p01 ushr 32) + (p10 ushr 32) + (middle ushr 32)
        }

        /** numpy's SeedSequence(seed).generate_state(nWords, uint32) (pool size 4). */
        internal fun seedSequenceState(seed: Int, nWords: Int): IntArray {
            val entropy = intArrayOf(seed)
            var hashConst = 0x43b0d7e5
            fun hashmix(value: Int): Int {
                var v = value xor hashConst
                hashConst *= 0x931e8875L.toInt()
                v *= hashConst
                return v xor (v ushr 16)
            }
            fun mix(x: Int, y: Int): Int {
                val r = 0xca01f9ddL.toInt() * x - 0x4973f715 * y
                return r xor (r ushr 16)
            }
            val pool = IntArray(4)
            for (i in 0 until 4) pool[i] = hashmix(if (i < entropy.size) entropy[i] else 0)
            for (src in 0 until 4) {
                for (dst in 0 until 4) {
                    if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src]))
                }
            }
            var h = 0x8b51f9ddL.toInt()
            return IntArray(nWords) {
                var v = pool[it % 4] xor h
                h *= 0x58f38ded
                v *= h
                v xor (v ushr 16)
            }
        }
    }
}

/** Python's round(v, 4), as backdrop/bench/run.py rounds every sample it writes. */
fun round4(v: Double): Double = BigDecimal(v).setScale(4, RoundingMode.HALF_EVEN).toDouble()

/** round(v, 3), as run.py writes memory and GateCheck.to_dict waited_s. */
fun round3(v: Double): Double = BigDecimal(v).setScale(3, RoundingMode.HALF_EVEN).toDouble()

// ---------------------------------------------------------------------------------------------
// The device
// ---------------------------------------------------------------------------------------------

/**
 * What the app knows about the phone, as plain values (the app fills it from android.os.Build,
 * /proc/cpuinfo and its own version; nothing here reads Android APIs).
 */
class DeviceInfo(
    val manufacturer: String,
    val model: String,
    /** Build.SOC_MANUFACTURER / SOC_MODEL (API 31+), "" when unknown. */
    val socManufacturer: String,
    val socModel: String,
    /** Build.BOARD ("ro.board.platform" is not in Build; BOARD is the closest) and Build.HARDWARE. */
    val board: String,
    val hardware: String,
    /** Build.SUPPORTED_ABIS, the primary first. */
    val abis: List<String>,
    val sdkInt: Int,
    val release: String,
    val fingerprint: String,
    /** System.getProperty("os.version"): the kernel release. */
    val kernel: String,
    /** The text of /proc/cpuinfo ("" when unreadable). */
    val cpuinfo: String,
    /** Runtime.availableProcessors(). */
    val cores: Int,
    /** True on an emulator (the app passes [looksLikeEmulator] or what it knows better). */
    val emulated: Boolean,
    /** Runtime package -> version for every runtime the app links, e.g. "executorch-android" -> "1.5.1". */
    val runtimeVersions: Map<String, String>,
    /** The app's own version (BuildConfig.VERSION_NAME). */
    val appVersion: String
)

/** The schema's `device` (DeviceDescription in device_tests/base.py). */
class DeviceDescription(
    val name: String,
    val tier: String,
    val emulated: Boolean,
    val machine: String,
    val cpu: String,
    val os: String,
    val runtimeVersions: Map<String, String>,
    val label: String,
    val details: Map<String, String>
) {
    fun toJson(): JsonObject {
        val o = JsonObject()
        o.addProperty("name", name)
        o.addProperty("tier", tier)
        o.addProperty("emulated", emulated)
        o.addProperty("machine", machine)
        o.addProperty("cpu", cpu)
        o.addProperty("os", os)
        o.add("runtime_versions", strings(runtimeVersions))
        o.addProperty("label", label)
        o.add("details", strings(details))
        return o
    }

    companion object {
        /**
         * The phone, named as `backdrop bench --device adb:SERIAL` names one (device_tests/adb_device.py),
         * so that the app's runs and the runner's land in the same tier: `android-<soc>` for a
         * phone, `emulator-<machine>` for an emulator (emulated: true, functional timings only).
         */
        fun of(info: DeviceInfo): DeviceDescription {
            val soc = firstNonEmpty(info.socModel, info.board, info.hardware) ?: "unknown"
            val abi = info.abis.firstOrNull() ?: "unknown"
            val machine = machineOf(abi)
            val product = listOf(info.manufacturer, info.model).filter { it.isNotEmpty() }.joinToString(" ")
            val tier = if (info.emulated) "emulator-${slug(if (machine == "aarch64") "arm64" else machine)}" else "android-${slug(soc)}"
            val label = if (info.emulated) "Android emulator ($machine), android_demo benchmark mode"
                else "${if (product.length == 0) "Android device" else product} ($soc), android_demo benchmark mode"
            val details = LinkedHashMap<String, String>()
            fun put(key: String, value: String) {
                if (value.isNotEmpty()) details[key] = value
            }
            put("ro.product.manufacturer", info.manufacturer)
            put("ro.product.model", info.model)
            put("ro.soc.manufacturer", info.socManufacturer)
            put("ro.soc.model", info.socModel)
            put("ro.product.board", info.board)
            put("ro.hardware", info.hardware)
            put("ro.product.cpu.abi", abi)
            put("abis", info.abis.joinToString(","))
            put("ro.build.version.sdk", info.sdkInt.toString())
            put("ro.build.version.release", info.release)
            put("ro.build.fingerprint", info.fingerprint)
            put("kernel", info.kernel)
            put("cores", info.cores.toString())
            put("app", "ai.backdrop.demo ${info.appVersion}")
            return DeviceDescription(
                name = "android_demo:${slug(product.ifEmpty { "android" })}",
                tier = tier,
                emulated = info.emulated,
                machine = machine,
                cpu = cpuFromCpuinfo(info.cpuinfo),
                os = "Android ${info.release.ifEmpty { "?" }} (SDK ${info.sdkInt}, ABI $abi)",
                runtimeVersions = info.runtimeVersions,
                label = label,
                details = details
            )
        }

        /**
         * The CPU as /proc/cpuinfo names it (adb_device.py's rule): "model name", "Hardware" or
         * "cpu model", else the distinct "CPU part" numbers, else "unknown".
         */
        fun cpuFromCpuinfo(text: String): String {
            val parts = java.util.TreeSet<String>()
            for (raw in text.lines()) {
                val line = raw.trim()
                val colon = line.indexOf(':')
                if (colon < 0) continue
                val key = asciiLower(line.substring(0, colon).trim())
                val value = line.substring(colon + 1).trim()
                if ((key == "model name" || key == "hardware" || key == "cpu model") && value.isNotEmpty()) return value
                if (key == "cpu part" && value.isNotEmpty()) parts.add(value)
            }
            return if (parts.isEmpty()) "unknown" else "Arm CPU parts " + parts.joinToString(", ")
        }

        /** Build values that only an emulator has (goldfish / ranchu hardware, generic or sdk_gphone builds). */
        fun looksLikeEmulator(fingerprint: String, hardware: String, product: String): Boolean {
            val hw = asciiLower(hardware)
            val fp = asciiLower(fingerprint)
            val pr = asciiLower(product)
            return hw == "goldfish" || hw == "ranchu" || fp.startsWith("generic") || fp.contains("/sdk_gphone") ||
                pr.startsWith("sdk_gphone") || pr.contains("emulator")
        }

        private fun machineOf(abi: String): String = when (abi) {
            "arm64-v8a" -> "aarch64"
            "armeabi-v7a", "armeabi" -> "armv7l"
            "x86_64" -> "x86_64"
            "x86" -> "i686"
            else -> abi
        }

        private fun firstNonEmpty(vararg values: String): String? = values.firstOrNull { it.isNotEmpty() }
    }
}

/** adb_device.py _slug: lower case, runs of anything but [a-z0-9] to one "-", trimmed. */
fun slug(text: String): String {
    val sb = StringBuilder()
    var dash = false
    for (ch in asciiLower(text)) {
        if ((ch in 'a'..'z') || (ch in '0'..'9')) {
            if (dash && sb.isNotEmpty()) sb.append('-')
            sb.append(ch)
            dash = false
        } else {
            dash = true
        }
    }
    return if (sb.length == 0) "unknown" else sb.toString()
}

/** ASCII-only lower case (locale-independent; the stdlib's spelling differs between Kotlin 1.3 and now). */
internal fun asciiLower(text: String): String {
    val sb = StringBuilder(text.length)
    for (ch in text) sb.append(if (ch in 'A'..'Z') ch + 32 else ch)
    return sb.toString()
}

private fun strings(map: Map<String, String>): JsonObject {
    val o = JsonObject()
    for ((k, v) in map) o.addProperty(k, v)
    return o
}

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

/** The run's context that is not a measurement: who measured what, from which export. */
class RunContext(
    /** The machine that drove the run: for the app, the phone itself. */
    val host: String,
    /** backdrop that exported the artifacts (the manifest's backdrop_version). */
    val backdropVersion: String,
    /** The export target, e.g. android-arm64. */
    val target: String,
    /** The manifest's model.checkpoint_sha256 (every result carries it); null when unknown. */
    val checkpointSha256: String?,
    /** sha256 of the manifest file the app read (the bundled one, trimmed by `make android-demo`). */
    val manifestSha256: String?,
    /** The checkout's commit; null outside a checkout (an app). */
    val gitCommit: String? = null,
    val source: String = BENCH_SOURCE,
    val notes: List<String> = emptyList(),
    /** Shared by runs whose artifacts took turns; null leaves it out. */
    val session: String? = null
) {
    companion object {
        /** The context from the manifest's text: its backdrop_version, target and checkpoint sha256. */
        fun fromManifest(manifestText: String, host: String, notes: List<String> = emptyList(), session: String? = null): RunContext {
            val m = try {
                com.google.gson.JsonParser.parseString(manifestText).asJsonObject
            } catch (e: RuntimeException) {  // JsonParseException, IllegalStateException: not an object
                throw ResultsError("the manifest is not a JSON object (${e.message})")
            }
            fun text(o: JsonObject?, name: String): String? {
                val e = o?.get(name)
                return if (e != null && e.isJsonPrimitive && e.asJsonPrimitive.isString) e.asString else null
            }
            val target = m.get("target")?.let { if (it.isJsonObject) it.asJsonObject else null }
            val model = m.get("model")?.let { if (it.isJsonObject) it.asJsonObject else null }
            return RunContext(
                host = host,
                backdropVersion = text(m, "backdrop_version") ?: throw ResultsError("the manifest has no backdrop_version"),
                target = text(target, "name") ?: throw ResultsError("the manifest has no target.name"),
                checkpointSha256 = text(model, "checkpoint_sha256"),
                manifestSha256 = sha256Hex(manifestText.toByteArray(Charsets.UTF_8)),
                notes = notes,
                session = session
            )
        }
    }
}

/** Lower-case hex sha256 of [bytes]. */
fun sha256Hex(bytes: ByteArray): String = hex(MessageDigest.getInstance("SHA-256").digest(bytes))

/** Lower-case hex sha256 of a file, streamed. */
fun sha256Hex(file: File): String {
    val digest = MessageDigest.getInstance("SHA-256")
    try {
        file.inputStream().use { input ->
            val buffer = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
    } catch (e: IOException) {
        throw ResultsError("cannot read $file: ${e.message}")
    }
    return hex(digest.digest())
}

private fun hex(bytes: ByteArray): String {
    val digits = "0123456789abcdef"
    val sb = StringBuilder(bytes.size * 2)
    for (b in bytes) {
        val v = b.toInt() and 0xff
        sb.append(digits[v shr 4]).append(digits[v and 15])
    }
    return sb.toString()
}

/** UTC ISO 8601 with microseconds, as run.py writes started_at / finished_at. */
fun utcTimestamp(epochMillis: Long): String =
    DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'").withZone(ZoneOffset.UTC).format(Instant.ofEpochMilli(epochMillis))

private val SHA256 = Regex("^[0-9a-f]{64}$")

object ResultsDocument {
    /**
     * The results document of [run] (run.py run_bench's document, field for field): samples
     * rounded to 4 decimals as run.py writes them, an artifact per [ArtifactRun] that has at
     * least one round (failed ones go to the notes, as run.py does).
     *
     * Throws [ResultsError] when nothing was measured or a value cannot go into the schema.
     */
    fun build(run: BenchRun, context: RunContext, device: DeviceDescription): JsonObject {
        val measured = run.results.filter { it.failure == null && it.rounds.isNotEmpty() }
        if (measured.isEmpty()) {
            throw ResultsError("no artifact has a timed round: " +
                run.results.joinToString("; ") { "${it.artifact.key}: ${it.failure ?: "no rounds"}" })
        }
        if (context.checkpointSha256 != null && !SHA256.matches(context.checkpointSha256)) {
            throw ResultsError("checkpoint sha256 \"${context.checkpointSha256}\" is not 64 lower-case hex digits")
        }
        if (context.manifestSha256 != null && !SHA256.matches(context.manifestSha256)) {
            throw ResultsError("manifest sha256 \"${context.manifestSha256}\" is not 64 lower-case hex digits")
        }
        val r = JsonObject()
        r.addProperty("started_at", utcTimestamp(run.startedAtMillis))
        r.addProperty("finished_at", utcTimestamp(run.finishedAtMillis))
        r.addProperty("source", nonEmpty(context.source, "source"))
        r.addProperty("host", nonEmpty(context.host, "host"))
        r.addProperty("backdrop_version", nonEmpty(context.backdropVersion, "backdrop_version"))
        r.add("git_commit", if (context.gitCommit == null) JsonNull.INSTANCE else JsonPrimitive(context.gitCommit))
        r.addProperty("target", nonEmpty(context.target, "target"))
        r.add("manifest_sha256", if (context.manifestSha256 == null) JsonNull.INSTANCE else JsonPrimitive(context.manifestSha256))
        r.add("protocol", run.protocol.toJson())
        r.add("device", device.toJson())
        if (context.session != null) r.addProperty("session", context.session)
        val notes = JsonArray()
        for (n in context.notes + run.notes) notes.add(n)
        for (a in run.results) if (a.failure != null) notes.add("failed ${a.artifact.key}: ${a.failure}")
        r.add("notes", notes)
        val results = JsonArray()
        for (a in measured) results.add(result(a, context, device))
        val doc = JsonObject()
        doc.addProperty("format", RESULTS_FORMAT)
        doc.addProperty("format_version", RESULTS_FORMAT_VERSION)
        doc.add("run", r)
        doc.add("results", results)
        return doc
    }

    /** [doc] as indented JSON text (nulls kept: the schema requires git_commit, memory, ...). */
    fun toText(doc: JsonObject): String =
        GsonBuilder().serializeNulls().setPrettyPrinting().disableHtmlEscaping().create().toJson(doc) + "\n"

    /** Write [doc] to [file] atomically (a temporary file renamed into place), so a reader never sees half of it. */
    fun write(doc: JsonObject, file: File) {
        writeAtomically(file, toText(doc).toByteArray(Charsets.UTF_8))
    }

    /** Per artifact and metric ("load", "model", "e2e"), the statistics of the samples the document holds. */
    fun statistics(doc: JsonObject): JsonObject {
        val out = JsonObject()
        for (e in doc.getAsJsonArray("results")) {
            val result = e.asJsonObject
            val key = result.getAsJsonObject("artifact").get("key").asString
            val metrics = JsonObject()
            for (metric in listOf("load", "model", "e2e")) {
                val samples = result.getAsJsonArray("${metric}_ms")
                if (samples.size() == 0) continue
                metrics.add(metric, LatencyStats.summarize(DoubleArray(samples.size()) { samples[it].asDouble }).toJson())
            }
            out.add(key, metrics)
        }
        return out
    }

    private fun result(a: ArtifactRun, context: RunContext, device: DeviceDescription): JsonObject {
        val art = a.artifact
        if (!SHA256.matches(art.sha256)) throw ResultsError("${art.key}: sha256 \"${art.sha256}\" is not 64 lower-case hex digits")
        if (art.sizeBytes < 0) throw ResultsError("${art.key}: size_bytes ${art.sizeBytes} is negative")
        val artifact = JsonObject()
        artifact.addProperty("key", art.key)
        artifact.addProperty("bucket", art.bucket)
        artifact.addProperty("format", art.format)
        artifact.addProperty("precision", art.precision)
        artifact.addProperty("state_form", art.stateForm.json)
        artifact.addProperty("sha256", art.sha256)
        artifact.addProperty("size_bytes", art.sizeBytes)
        artifact.add("checkpoint_sha256", if (context.checkpointSha256 == null) JsonNull.INSTANCE else JsonPrimitive(context.checkpointSha256))
        artifact.addProperty("file", art.path)
        artifact.addProperty("peer", false)

        val cores = java.util.TreeMap<Int, Int>()
        var threads = 0
        var top: RoundTimings? = null
        for (t in a.rounds) {
            for ((cpu, n) in t.cores) cores[cpu] = (cores[cpu] ?: 0) + n
            if (t.threads > threads) threads = t.threads
            val peak = t.peakRssMb
            if (peak != null && (top == null || peak > top.peakRssMb!!)) top = t
        }
        val flags = JsonArray()
        if (a.gates.any { it.timedOut }) flags.add("gate-timed-out")
        if (a.gates.all { it.readings.isEmpty() }) flags.add("gate-unavailable")
        if (device.emulated) flags.add("emulated")

        val o = JsonObject()
        o.add("artifact", artifact)
        o.add("runtime_versions", strings(a.runtimeVersions))
        o.addProperty("threads", threads)
        val coresJson = JsonObject()
        for ((cpu, n) in cores) coresJson.addProperty(cpu.toString(), n)
        o.add("cores", coresJson)
        if (top == null) {
            o.add("memory", JsonNull.INSTANCE)
        } else {
            val memory = JsonObject()
            memory.addProperty("peak_rss_mb", round3(top.peakRssMb!!))
            val base = top.baselineRssMb
            memory.add("baseline_rss_mb", if (base == null) JsonNull.INSTANCE else JsonPrimitive(round3(base)))
            memory.addProperty("kind", top.memoryKind)
            o.add("memory", memory)
        }
        val gates = JsonArray()
        for (g in a.gates) gates.add(g.toJson())
        o.add("gate", gates)
        o.add("flags", flags)
        o.add("load_ms", samples(a.rounds.map { it.loadMs }.toDoubleArray(), "${art.key} load_ms"))
        val roundFrames = JsonArray()
        for (t in a.rounds) {
            val n = if (t.modelMs.isNotEmpty()) t.modelMs.size else t.e2eMs.size
            if (n < 1) throw ResultsError("${art.key}: a round timed no frame")
            roundFrames.add(n)
        }
        o.add("round_frames", roundFrames)
        o.add("model_ms", samples(concat(a.rounds.map { it.modelMs }), "${art.key} model_ms"))
        o.add("e2e_ms", samples(concat(a.rounds.map { it.e2eMs }), "${art.key} e2e_ms"))
        return o
    }

    private fun concat(parts: List<DoubleArray>): DoubleArray {
        var n = 0
        for (p in parts) n += p.size
        val out = DoubleArray(n)
        var i = 0
        for (p in parts) {
            System.arraycopy(p, 0, out, i, p.size)
            i += p.size
        }
        return out
    }

    private fun samples(values: DoubleArray, what: String): JsonArray {
        val out = JsonArray()
        for ((i, v) in values.withIndex()) {
            if (!v.isFinite() || v < 0) throw ResultsError("$what[$i] is $v; samples are milliseconds, finite and >= 0")
            out.add(round4(v))
        }
        return out
    }

    private fun nonEmpty(value: String, field: String): String =
        if (value.length == 0) throw ResultsError("run.$field is empty; the schema needs a value") else value
}
