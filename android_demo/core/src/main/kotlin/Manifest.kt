// dist/<target>/manifest.json read with Gson (docs/manifest.md is the contract): the buckets, the
// threshold, the camera format and every artifact with its tensors, state form and checksum.
// A manifest whose schema MAJOR this code does not know is refused; a newer MINOR is read (new
// optional fields are ignored).
package ai.backdrop.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParseException
import com.google.gson.JsonParser
import java.io.File
import java.io.IOException

/** The manifest cannot be used: unreadable, not JSON, an unknown schema MAJOR, or a field missing or wrong. */
class ManifestError(message: String) : IllegalArgumentException(message)

/** The schema MAJOR this code reads (docs/manifest.md "Versioning"). */
const val KNOWN_SCHEMA_MAJOR = 1

/** How the artifact carries the previous mask (docs/manifest.md "State forms"). */
enum class StateForm(val json: String) {
    /** forward(frame, prev_mask) -> (mask, next_mask): the app feeds next_mask back. */
    EXPLICIT("explicit"),
    /** forward(frame, reset) -> mask: the runtime keeps mask_state; the app passes the reset flag. */
    NATIVE("native");

    companion object {
        fun of(text: String, where: String): StateForm = values().firstOrNull { it.json == text }
            ?: throw ManifestError("$where: state_form \"$text\" is not \"explicit\" or \"native\"")
    }
}

/** One input, output or state tensor of an artifact. */
data class TensorSpec(val name: String, val shape: List<Int>, val dtype: String, val layout: String)

/** One exported file (docs/manifest.md "Per artifact"). */
data class Artifact(
    val key: String,
    val path: String,
    val format: String,
    val runtime: String,
    val precision: String,
    val stateForm: StateForm,
    val bucket: String,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
    val states: List<TensorSpec>,
    val sha256: String,
    val sizeBytes: Long,
    val verified: Boolean?,
    /** The per-frame IoU floor the export verified it to (`details.parity.thresholds.min_iou`: 0.99 for
     *  float, lower for int8, docs/manifest.md); null where the export did not run it. */
    val parityMinIou: Double? = null
) {
    /** The `frame` input, (1, 3, Hb, Wb). */
    val frameInput: TensorSpec get() = inputs[0]
}

data class Bucket(val name: String, val height: Int, val width: Int)

class Manifest(
    val schemaVersion: String,
    val target: String,
    val platform: String,
    /** Layout of the goldens' camera buffers: "nv21" (Android) or "nv12" (iOS). */
    val cameraFormat: String,
    val buckets: List<Bucket>,
    /** Binary mask = probability >= threshold (compare in float32: threshold.toFloat()). */
    val threshold: Double,
    val artifacts: List<Artifact>,
    /** Bucket name -> golden file, relative to the manifest. */
    val goldens: Map<String, String>,
    /** Bucket name -> sha256 of its golden file (schema 1.2; empty in older manifests). */
    val goldenSha256: Map<String, String> = emptyMap()
) {
    /** The bucket called [name]. */
    fun bucket(name: String): Bucket = buckets.firstOrNull { it.name == name }
        ?: throw ManifestError("no bucket \"$name\" in the manifest; it has ${buckets.joinToString { it.name }}")

    /** The bucket a height x width frame goes into (buckets.py BucketSet.select). */
    fun selectBucket(height: Int, width: Int): Bucket = ai.backdrop.core.selectBucket(buckets, height, width)

    /** The artifacts of one bucket, in manifest order. */
    fun artifactsFor(bucket: String): List<Artifact> = artifacts.filter { it.bucket == bucket }

    /** The artifact of [bucket] with this format, precision and state form. */
    fun artifact(bucket: String, format: String, precision: String, stateForm: StateForm): Artifact =
        artifacts.firstOrNull { it.bucket == bucket && it.format == format && it.precision == precision && it.stateForm == stateForm }
            ?: throw ManifestError("no $format $precision ${stateForm.json} artifact for bucket \"$bucket\"; it has " +
                artifactsFor(bucket).joinToString { "${it.format}-${it.precision}-${it.stateForm.json}" })

    companion object {
        fun load(file: File): Manifest {
            val text = try {
                file.readText(Charsets.UTF_8)
            } catch (e: IOException) {
                throw ManifestError("cannot read $file: ${e.message}")
            }
            try {
                return parse(text)
            } catch (e: ManifestError) {
                throw ManifestError("$file: ${e.message}")
            }
        }

        fun parse(text: String): Manifest {
            val root = try {
                JsonParser.parseString(text)
            } catch (e: JsonParseException) {
                throw ManifestError("not valid JSON (${e.message})")
            }
            if (!root.isJsonObject) throw ManifestError("the manifest is a JSON object; got ${kind(root)}")
            val m = root.asJsonObject
            val version = string(m, "schema_version", "manifest")
            val major = version.substringBefore('.').toIntOrNull()
                ?: throw ManifestError("schema_version \"$version\" is not MAJOR.MINOR")
            if (major != KNOWN_SCHEMA_MAJOR) {
                throw ManifestError("schema_version $version has MAJOR $major; this code reads MAJOR $KNOWN_SCHEMA_MAJOR " +
                    "only. Update android_demo/core to a version that knows it, or export with the backdrop this app was built for.")
            }
            val target = obj(m, "target", "manifest")
            val camera = obj(m, "camera", "manifest")
            val buckets = array(m, "buckets", "manifest").mapIndexed { i, e ->
                val b = asObj(e, "buckets[$i]")
                Bucket(string(b, "name", "buckets[$i]"), int(b, "height", "buckets[$i]"), int(b, "width", "buckets[$i]"))
            }
            if (buckets.isEmpty()) throw ManifestError("buckets is empty")
            val threshold = number(m, "threshold", "manifest")
            if (!(threshold >= 0.0 && threshold <= 1.0)) throw ManifestError("threshold $threshold is not within [0, 1]")
            val artifacts = array(m, "artifacts", "manifest").mapIndexed { i, e -> artifact(asObj(e, "artifacts[$i]"), "artifacts[$i]") }
            for (a in artifacts) {
                if (buckets.none { it.name == a.bucket }) throw ManifestError("artifact ${a.key}: bucket \"${a.bucket}\" is not in buckets")
            }
            val goldens = LinkedHashMap<String, String>()
            for ((k, v) in obj(m, "goldens", "manifest").entrySet()) {
                if (!v.isJsonPrimitive || !v.asJsonPrimitive.isString) throw ManifestError("goldens.$k is not a string")
                goldens[k] = v.asString
            }
            val goldenSha = LinkedHashMap<String, String>()
            val shas = m.get("golden_sha256")
            if (shas != null && shas.isJsonObject) {
                for ((k, v) in shas.asJsonObject.entrySet()) {
                    if (!v.isJsonPrimitive || !v.asJsonPrimitive.isString) throw ManifestError("golden_sha256.$k is not a string")
                    goldenSha[k] = v.asString
                }
            }
            return Manifest(version, string(target, "name", "target"), string(target, "platform", "target"),
                string(camera, "format", "camera"), buckets, threshold, artifacts, goldens, goldenSha)
        }

        private fun artifact(a: JsonObject, where: String): Artifact {
            val key = string(a, "key", where)
            val at = "artifact $key"
            fun tensors(field: String) = array(a, field, at).mapIndexed { i, e ->
                val t = asObj(e, "$at $field[$i]")
                val w = "$at $field[$i]"
                TensorSpec(string(t, "name", w), array(t, "shape", w).map { intOf(it, "$w shape") }, string(t, "dtype", w),
                    string(t, "layout", w))
            }
            val inputs = tensors("inputs")
            if (inputs.isEmpty()) throw ManifestError("$at has no inputs")
            val frame = inputs[0]
            if (frame.shape.size != 4 || frame.shape[0] != 1 || frame.shape[1] != 3) {
                throw ManifestError("$at: its first input ${frame.name} has shape ${frame.shape}; a frame is (1, 3, H, W)")
            }
            val verified = a.get("verified")
            val floor = parityMinIou(a, at)
            return Artifact(key, string(a, "path", at), string(a, "format", at), string(a, "runtime", at), string(a, "precision", at),
                StateForm.of(string(a, "state_form", at), at), string(a, "bucket", at), inputs, tensors("outputs"), tensors("states"),
                string(a, "sha256", at), number(a, "size_bytes", at).toLong(),
                if (verified == null || verified.isJsonNull) null else verified.asBoolean, floor)
        }

        /** `details.parity.thresholds.min_iou` when the export verified the artifact; each level optional. */
        private fun parityMinIou(a: JsonObject, at: String): Double? {
            var o: JsonObject = a
            for (name in listOf("details", "parity", "thresholds")) {
                val e = o.get(name)
                if (e == null || e.isJsonNull) return null
                o = asObj(e, "$at $name")
            }
            if (o.get("min_iou") == null) return null
            val v = number(o, "min_iou", "$at details.parity.thresholds")
            if (!(v > 0.0 && v <= 1.0)) throw ManifestError("$at: details.parity.thresholds.min_iou $v is not within (0, 1]")
            return v
        }

        private fun kind(e: JsonElement?): String = when {
            e == null -> "nothing"
            e.isJsonObject -> "an object"
            e.isJsonArray -> "an array"
            e.isJsonNull -> "null"
            else -> "\"$e\""
        }

        private fun field(o: JsonObject, name: String, where: String): JsonElement =
            o.get(name) ?: throw ManifestError("$where has no \"$name\"")

        private fun asObj(e: JsonElement, where: String): JsonObject =
            if (e.isJsonObject) e.asJsonObject else throw ManifestError("$where is not an object; got ${kind(e)}")

        private fun obj(o: JsonObject, name: String, where: String): JsonObject = asObj(field(o, name, where), "$where.$name")

        private fun array(o: JsonObject, name: String, where: String): JsonArray {
            val e = field(o, name, where)
            return if (e.isJsonArray) e.asJsonArray else throw ManifestError("$where.$name is not an array; got ${kind(e)}")
        }

        private fun string(o: JsonObject, name: String, where: String): String {
            val e = field(o, name, where)
            if (!e.isJsonPrimitive || !e.asJsonPrimitive.isString) throw ManifestError("$where.$name is not a string; got ${kind(e)}")
            return e.asString
        }

        private fun number(o: JsonObject, name: String, where: String): Double {
            val e = field(o, name, where)
            if (!e.isJsonPrimitive || !e.asJsonPrimitive.isNumber) throw ManifestError("$where.$name is not a number; got ${kind(e)}")
            return e.asDouble
        }

        private fun intOf(e: JsonElement, where: String): Int {
            if (!e.isJsonPrimitive || !e.asJsonPrimitive.isNumber) throw ManifestError("$where holds ${kind(e)}, not an integer")
            val d = e.asDouble
            if (d != Math.floor(d) || d < 1 || d > Int.MAX_VALUE) throw ManifestError("$where holds $d, not a positive integer")
            return d.toInt()
        }

        private fun int(o: JsonObject, name: String, where: String): Int = intOf(field(o, name, where), "$where.$name")
    }
}

const val MAX_ASPECT_FACTOR = 2L  // buckets.py MAX_ASPECT_FACTOR

/**
 * buckets.py BucketSet.select: the bucket whose aspect ratio is nearest the frame's, compared
 * exactly in integers (distortion p / q >= 1); ties go to the earlier bucket; more than
 * [MAX_ASPECT_FACTOR] off even the nearest is refused.
 */
fun selectBucket(buckets: List<Bucket>, height: Int, width: Int): Bucket {
    checkFrameSide("height", height.toLong())
    checkFrameSide("width", width.toLong())
    if (buckets.isEmpty()) throw PreprocessError("no buckets to choose from")
    fun distortion(b: Bucket): Pair<Long, Long> {
        val a = width.toLong() * b.height
        val c = height.toLong() * b.width
        return if (a >= c) Pair(a, c) else Pair(c, a)
    }
    var best = buckets[0]
    var (bestP, bestQ) = distortion(best)
    for (b in buckets.drop(1)) {
        val (p, q) = distortion(b)
        if (p * bestQ < bestP * q) {
            best = b
            bestP = p
            bestQ = q
        }
    }
    if (bestP > MAX_ASPECT_FACTOR * bestQ) {
        throw PreprocessError("frame ${height}x$width (HxW) is more than ${MAX_ASPECT_FACTOR}x off the nearest bucket " +
            "${best.name} ${best.height}x${best.width}; crop the frame or export a bucket of that shape")
    }
    return best
}
