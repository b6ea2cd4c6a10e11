// A JVM entry to the results writer, so Python can hold it to backdrop's own reader
// (tests/test_android_results.py): per-round timings and a device description in, the results
// document (Results.kt, what the app's benchmark mode writes) and its statistics out.
//
//   java -cp "$(cat build/android-core/classpath)" ai.backdrop.core.BenchDocumentKt \
//       --timings timings.json --out results.json [--stats-out stats.json]
//
// timings.json (every field required unless marked optional):
//
//   {"started_at_ms": 1764758400000, "finished_at_ms": 1764758460000,      UTC epoch ms
//    "host": "...", "backdrop_version": "0.1.0", "target": "android-arm64",
//    "checkpoint_sha256": "<64 hex>" | null, "manifest_sha256": "<64 hex>" | null,
//    "session": "..." (optional), "notes": ["..."] (optional),
//    "protocol": {"name": "quick" | "mlperf", "rounds": 2, ...} (overrides as BenchProtocol.named takes
//        them: warmup, min_frames, min_seconds, rounds, cooldown_s, max_temp_c, gate_timeout_s, threads),
//    "device": {"manufacturer", "model", "soc_manufacturer", "soc_model", "board", "hardware",
//               "abis": [...], "sdk_int", "release", "fingerprint", "kernel", "cpuinfo", "cores",
//               "emulated", "runtime_versions": {...}, "app_version"},     the DeviceInfo fields
//    "results": [{"artifact": {"key", "path", "format", "precision", "state_form", "bucket", "sha256", "size_bytes"},
//                 "runtime_versions": {...},
//                 "failure": "..." (optional: the artifact failed; it goes to the notes),
//                 "rounds": [{"load_ms": 8.1, "model_ms": [...], "e2e_ms": [...],
//                             "threads": 0, "cores": {"4": 120} (optional), "peak_rss_mb": 210.5 (optional),
//                             "baseline_rss_mb": 180.0 (optional), "memory_kind": "..." (optional),
//                             "gate": {"waited_s": 0.0, "timed_out": false, "readings": {"temp_c:battery": 31.0}}}]}]}
//
// stats.json: artifact key -> metric ("load", "model", "e2e") -> the fields of stats.py Stats.
// Exit status: 0 written; 2 bad arguments or a malformed timings file (one line on stderr that
// names the field); 3 a failed write.
package ai.backdrop.core

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParseException
import com.google.gson.JsonParser
import java.io.File
import java.io.IOException
import kotlin.system.exitProcess

private class TimingsError(message: String) : Exception(message)

private const val BENCH_DOCUMENT_USAGE = "usage: --timings timings.json --out results.json [--stats-out stats.json]"

/** A field of the timings file, with its path for the error message. */
private class TimingsField(val e: JsonElement?, val path: String) {
    val present: Boolean get() = e != null && !e.isJsonNull

    fun obj(): JsonObject = if (e != null && e.isJsonObject) e.asJsonObject else fail("an object")
    fun arr(): JsonArray = if (e != null && e.isJsonArray) e.asJsonArray else fail("an array")
    fun str(): String = if (e != null && e.isJsonPrimitive && e.asJsonPrimitive.isString) e.asString else fail("a string")
    fun strOrNull(): String? = if (!present) null else str()
    fun bool(): Boolean = if (e != null && e.isJsonPrimitive && e.asJsonPrimitive.isBoolean) e.asBoolean else fail("true or false")
    fun num(): Double {
        if (e == null || !e.isJsonPrimitive || !e.asJsonPrimitive.isNumber) fail("a number")
        val v = e.asDouble
        if (!v.isFinite()) fail("a finite number")
        return v
    }
    fun long(): Long {
        val v = num()
        if (v != Math.floor(v) || Math.abs(v) > 9.007199254740992E15) fail("an integer")
        return v.toLong()
    }
    fun int(): Int {
        val v = long()
        if (v < Int.MIN_VALUE || v > Int.MAX_VALUE) fail("an integer within 32 bits")
        return v.toInt()
    }
    fun ms(): Double {
        val v = num()
        if (v < 0) throw TimingsError("$path is $v; samples are milliseconds >= 0")
        return v
    }
    fun msArray(): DoubleArray {
        val a = arr()
        return DoubleArray(a.size()) { TimingsField(a[it], "$path[$it]").ms() }
    }
    fun strings(): Map<String, String> {
        val out = LinkedHashMap<String, String>()
        for ((k, v) in obj().entrySet()) out[k] = TimingsField(v, "$path.$k").str()
        return out
    }
    operator fun get(name: String): TimingsField = TimingsField(obj().get(name), if (path.length == 0) name else "$path.$name")
    fun items(): List<TimingsField> {
        val a = arr()
        return (0 until a.size()).map { TimingsField(a[it], "$path[$it]") }
    }

    fun fail(what: String): Nothing {
        val shown = if (e == null) "missing" else if (e.isJsonNull) "null" else e.toString().let { if (it.length > 60) it.substring(0, 57) + "..." else it }
        throw TimingsError("${if (path.length == 0) "the file" else path} is $shown; expected $what")
    }
}

private fun protocolOf(p: TimingsField): BenchProtocol {
    fun int(name: String): Int? = p[name].let { if (it.present) it.int() else null }
    fun num(name: String): Double? = p[name].let { if (it.present) it.num() else null }
    val known = setOf("name", "warmup", "min_frames", "min_seconds", "rounds", "cooldown_s", "max_temp_c", "gate_timeout_s", "threads")
    val unknown = p.obj().keySet().filter { it !in known }
    if (unknown.isNotEmpty()) throw TimingsError("${p.path} has unknown fields ${unknown.joinToString()}; known: ${known.joinToString()}")
    return try {
        BenchProtocol.named(p["name"].str(), int("warmup"), int("min_frames"), num("min_seconds"), int("rounds"), num("cooldown_s"),
            num("max_temp_c"), num("gate_timeout_s"), int("threads"))
    } catch (e: BenchError) {
        throw TimingsError("${p.path}: ${e.message}")
    }
}

private fun deviceOf(d: TimingsField): DeviceInfo = DeviceInfo(
    manufacturer = d["manufacturer"].str(), model = d["model"].str(), socManufacturer = d["soc_manufacturer"].str(),
    socModel = d["soc_model"].str(), board = d["board"].str(), hardware = d["hardware"].str(),
    abis = d["abis"].items().map { it.str() }, sdkInt = d["sdk_int"].int(), release = d["release"].str(),
    fingerprint = d["fingerprint"].str(), kernel = d["kernel"].str(), cpuinfo = d["cpuinfo"].str(), cores = d["cores"].int(),
    emulated = d["emulated"].bool(), runtimeVersions = d["runtime_versions"].strings(), appVersion = d["app_version"].str()
)

private fun artifactOf(a: TimingsField): Artifact {
    val form = a["state_form"].str()
    val stateForm = StateForm.values().firstOrNull { it.json == form }
        ?: throw TimingsError("${a.path}.state_form is \"$form\"; expected explicit or native")
    val size = a["size_bytes"].long()
    if (size < 0) throw TimingsError("${a.path}.size_bytes is $size; expected >= 0")
    return Artifact(a["key"].str(), a["path"].str(), a["format"].str(), a["runtime"].strOrNull() ?: a["format"].str(),
        a["precision"].str(), stateForm, a["bucket"].str(), emptyList(), emptyList(), emptyList(), a["sha256"].str(), size, null)
}

private fun roundOf(r: TimingsField): Pair<RoundTimings, GateCheck> {
    val cores = LinkedHashMap<Int, Int>()
    if (r["cores"].present) {
        for ((k, v) in r["cores"].obj().entrySet()) {
            val cpu = k.toIntOrNull()
            if (cpu == null || cpu < 0) throw TimingsError("${r.path}.cores has key \"$k\"; expected a CPU number")
            val n = TimingsField(v, "${r.path}.cores.$k").int()
            if (n < 0) throw TimingsError("${r.path}.cores.$k is $n; expected >= 0")
            cores[cpu] = n
        }
    }
    val model = r["model_ms"].msArray()
    val e2e = r["e2e_ms"].msArray()
    if (model.isEmpty() && e2e.isEmpty()) throw TimingsError("${r.path} has no timed frame (model_ms and e2e_ms are both empty)")
    if (model.isNotEmpty() && e2e.isNotEmpty() && model.size != e2e.size) {
        throw TimingsError("${r.path} has ${model.size} model_ms but ${e2e.size} e2e_ms; one of each per frame")
    }
    val threads = r["threads"].int()
    if (threads < 0) throw TimingsError("${r.path}.threads is $threads; expected >= 0")
    fun mb(name: String): Double? = r[name].let { if (it.present) it.ms() else null }
    val g = r["gate"]
    val readings = LinkedHashMap<String, Double>()
    for ((k, v) in g["readings"].obj().entrySet()) readings[k] = TimingsField(v, "${g.path}.readings.$k").num()
    val waited = g["waited_s"].num()
    if (waited < 0) throw TimingsError("${g.path}.waited_s is $waited; expected >= 0")
    val timings = RoundTimings(r["load_ms"].ms(), model, e2e, threads, cores, mb("peak_rss_mb"), mb("baseline_rss_mb"),
        r["memory_kind"].strOrNull() ?: "")
    return Pair(timings, GateCheck(0, waited, g["timed_out"].bool(), readings))
}

/** The document and its statistics from a timings file's root. */
internal fun benchDocument(root: JsonElement): Pair<JsonObject, JsonObject> {
    val t = TimingsField(root, "")
    t.obj()
    val results = t["results"].items().map { res ->
        val rounds = res["rounds"].items().map { roundOf(it) }
        val gates = rounds.mapIndexed { i, (_, g) -> GateCheck(i, g.waitedS, g.timedOut, g.readings) }
        ArtifactRun(artifactOf(res["artifact"]), rounds.map { it.first }, gates, res["failure"].strOrNull(), res["runtime_versions"].strings())
    }
    if (results.isEmpty()) throw TimingsError("results is empty; expected at least one artifact")
    val run = BenchRun(t["started_at_ms"].long(), t["finished_at_ms"].long(), protocolOf(t["protocol"]), results, emptyList())
    val context = RunContext(
        host = t["host"].str(), backdropVersion = t["backdrop_version"].str(), target = t["target"].str(),
        checkpointSha256 = t["checkpoint_sha256"].strOrNull(), manifestSha256 = t["manifest_sha256"].strOrNull(),
        notes = if (t["notes"].present) t["notes"].items().map { it.str() } else emptyList(), session = t["session"].strOrNull()
    )
    val doc = try {
        ResultsDocument.build(run, context, DeviceDescription.of(deviceOf(t["device"])))
    } catch (e: ResultsError) {
        throw TimingsError(e.message ?: "the document cannot be written")
    }
    return Pair(doc, ResultsDocument.statistics(doc))
}

fun main(args: Array<String>) {
    try {
        val o = LinkedHashMap<String, String>()
        var i = 0
        while (i < args.size) {
            val a = args[i]
            if (a !in listOf("--timings", "--out", "--stats-out")) throw TimingsError("unexpected argument \"$a\"\n$BENCH_DOCUMENT_USAGE")
            if (i + 1 >= args.size) throw TimingsError("$a needs a value\n$BENCH_DOCUMENT_USAGE")
            o[a.substring(2)] = args[i + 1]
            i += 2
        }
        val timings = o["timings"] ?: throw TimingsError("--timings is required\n$BENCH_DOCUMENT_USAGE")
        val out = o["out"] ?: throw TimingsError("--out is required\n$BENCH_DOCUMENT_USAGE")
        val text = try {
            File(timings).readText(Charsets.UTF_8)
        } catch (e: IOException) {
            throw TimingsError("cannot read $timings: ${e.message}")
        }
        val root = try {
            JsonParser.parseString(text)
        } catch (e: JsonParseException) {
            throw TimingsError("$timings is not valid JSON (${e.message})")
        }
        val (doc, stats) = try {
            benchDocument(root)
        } catch (e: TimingsError) {
            throw TimingsError("$timings: ${e.message}")
        }
        try {
            ResultsDocument.write(doc, File(out))
            val statsOut = o["stats-out"]
            if (statsOut != null) File(statsOut).writeText(GsonBuilder().setPrettyPrinting().create().toJson(stats) + "\n")
        } catch (e: IOException) {
            System.err.println("bench-document: ${e.message}")
            exitProcess(3)
        }
    } catch (e: TimingsError) {
        System.err.println("bench-document: ${e.message}")
        exitProcess(2)
    }
}
