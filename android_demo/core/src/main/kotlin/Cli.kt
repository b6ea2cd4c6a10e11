// The library as a command line, in .npy files, so any frame can be held against the Python
// reference (tests/test_android_core.py does; `backdrop conformance --impl kotlin` uses the
// batch harness in Conformance.kt):
//
//   java -cp "$(cat build/android-core/classpath)" ai.backdrop.core.CliKt preprocess \
//       --buffer frame.npy --layout nv21 --width 176 --height 98 [--row-stride S] [--range full] \
//       (--bucket 160x288 | --manifest dist/android-arm64/manifest.json) --out input.npy
//   ... postprocess --mask mask.npy --width 176 --height 98 (--bucket HxW | --manifest M) --out camera_mask.npy \
//       [--binary-out binary.npy [--threshold T]] [--alpha-out alpha.npy [--feather LO,HI]]
//
// preprocess: a uint8 camera buffer (1-D) -> the float32 (1, 3, Hb, Wb) model input; prints the
// bucket and placement as one JSON line. postprocess: a float32 bucket mask (Hb * Wb values, any
// shape) -> the float32 (H, W) frame mask, and optionally the uint8 binary mask (threshold:
// --threshold, else the manifest's) and feathered alpha (--feather, else the threshold's default band).
// Exit status: 0 done, 2 bad arguments or input (one line on stderr), 3 a failed write.
package ai.backdrop.core

import java.io.File
import java.io.IOException
import kotlin.system.exitProcess

private class UsageError(message: String) : Exception(message)

private const val USAGE = "usage: preprocess --buffer F.npy --layout nv21|nv12|i420 --width W --height H [--row-stride S] " +
    "[--range full|video] (--bucket HxW | --manifest M) --out F.npy\n" +
    "       postprocess --mask F.npy --width W --height H (--bucket HxW | --manifest M) --out F.npy " +
    "[--binary-out F.npy] [--threshold T] [--alpha-out F.npy] [--feather LO,HI]"

private fun options(args: List<String>): Map<String, String> {
    val out = LinkedHashMap<String, String>()
    var i = 0
    while (i < args.size) {
        val a = args[i]
        if (!a.startsWith("--")) throw UsageError("unexpected argument \"$a\"")
        val eq = a.indexOf('=')
        if (eq > 0) {
            out[a.substring(2, eq)] = a.substring(eq + 1)
            i++
        } else {
            if (i + 1 >= args.size) throw UsageError("$a needs a value")
            out[a.substring(2)] = args[i + 1]
            i += 2
        }
    }
    return out
}

private fun Map<String, String>.need(name: String): String = this[name] ?: throw UsageError("--$name is required")

private fun Map<String, String>.int(name: String, default: Int? = null): Int {
    val v = this[name] ?: return default ?: throw UsageError("--$name is required")
    return v.toIntOrNull() ?: throw UsageError("--$name $v is not an integer")
}

private fun Map<String, String>.float(name: String): Float? {
    val v = this[name] ?: return null
    return v.toDoubleOrNull()?.toFloat() ?: throw UsageError("--$name $v is not a number")
}

/** The bucket and, with --manifest, the manifest. */
private fun bucketOf(o: Map<String, String>, height: Int, width: Int): Pair<Bucket, Manifest?> {
    val spec = o["bucket"]
    val manifestPath = o["manifest"]
    if ((spec == null) == (manifestPath == null)) throw UsageError("pass exactly one of --bucket HxW and --manifest M")
    if (spec != null) {
        val parts = spec.split('x', 'X')
        val h = parts.getOrNull(0)?.toIntOrNull()
        val w = parts.getOrNull(1)?.toIntOrNull()
        if (parts.size != 2 || h == null || w == null) throw UsageError("--bucket $spec is not HxW, e.g. 160x288")
        return Pair(Bucket("${h}x$w", h, w), null)
    }
    val manifest = Manifest.load(File(manifestPath!!))
    return Pair(manifest.selectBucket(height, width), manifest)
}

private fun readNpy(path: String): NpyArray = try {
    Npy.read(File(path))
} catch (e: IOException) {
    throw UsageError("cannot read $path: ${e.message}")
}

private fun write(path: String, bytes: ByteArray) = writeAtomically(File(path), bytes)

private fun preprocess(o: Map<String, String>) {
    val width = o.int("width")
    val height = o.int("height")
    val rowStride = o.int("row-stride", 0)
    val buffer = readNpy(o.need("buffer")).bytes()
    val range = when (o["range"] ?: "full") {
        "full" -> ColorRange.FULL
        "video" -> ColorRange.VIDEO
        else -> throw UsageError("--range ${o["range"]} is not full or video")
    }
    val frame = when (val layout = o.need("layout")) {
        "nv21" -> Yuv420Frame.nv21(buffer, width, height, rowStride)
        "nv12" -> Yuv420Frame.nv12(buffer, width, height, rowStride)
        "i420" -> Yuv420Frame.i420(buffer, width, height, rowStride)
        else -> throw UsageError("--layout $layout is not nv21, nv12 or i420")
    }
    val (bucket, _) = bucketOf(o, height, width)
    val p = plan(height, width, bucket.height, bucket.width)
    val input = modelInput(toYuv444(frame, range), p)
    write(o.need("out"), Npy.floats(input, intArrayOf(1, 3, bucket.height, bucket.width)))
    println("{\"bucket\": \"${bucket.name}\", \"height\": ${bucket.height}, \"width\": ${bucket.width}, " +
        "\"scaled_size\": [${p.scaledHeight}, ${p.scaledWidth}], \"pad\": {\"top\": ${p.padTop}, \"bottom\": ${p.padBottom}, " +
        "\"left\": ${p.padLeft}, \"right\": ${p.padRight}}}")
}

private fun postprocess(o: Map<String, String>) {
    val width = o.int("width")
    val height = o.int("height")
    val (bucket, manifest) = bucketOf(o, height, width)
    val mask = readNpy(o.need("mask")).floats()
    val p = plan(height, width, bucket.height, bucket.width)
    val frameMask = fromBucket(mask, p)
    val out = o.need("out")
    val threshold = o.float("threshold") ?: manifest?.threshold?.toFloat()
    val binaryOut = o["binary-out"]
    val alphaOut = o["alpha-out"]
    val shape = intArrayOf(height, width)
    var binary: ByteArray? = null
    if (binaryOut != null) {
        binary = binaryMask(frameMask, threshold ?: throw UsageError("--binary-out needs --threshold T or --manifest M"))
    }
    var alpha: ByteArray? = null
    if (alphaOut != null) {
        val band = o["feather"]
        val (lo, hi) = if (band != null) {
            val parts = band.split(',').map { it.trim().toDoubleOrNull() }
            if (parts.size != 2 || parts[0] == null || parts[1] == null) throw UsageError("--feather $band is not LO,HI")
            Pair(parts[0]!!.toFloat(), parts[1]!!.toFloat())
        } else {
            val t = o["threshold"]?.toDouble() ?: manifest?.threshold
                ?: throw UsageError("--alpha-out needs --feather LO,HI, --threshold T or --manifest M")
            featherBand(t)
        }
        alpha = featherAlpha(frameMask, lo, hi)
    }
    write(out, Npy.floats(frameMask, shape))
    if (binaryOut != null) write(binaryOut, Npy.encode("|u1", shape, binary!!))
    if (alphaOut != null) write(alphaOut, Npy.encode("|u1", shape, alpha!!))
}

fun main(args: Array<String>) {
    val command = args.firstOrNull()
    try {
        val o = options(args.drop(1))
        when (command) {
            "preprocess" -> preprocess(o)
            "postprocess" -> postprocess(o)
            else -> throw UsageError(if (command == null) "no command" else "unknown command \"$command\"")
        }
    } catch (e: UsageError) {
        System.err.println("backdrop-core: ${e.message}\n$USAGE")
        exitProcess(2)
    } catch (e: IllegalArgumentException) {  // PreprocessError, ManifestError, NpyError
        System.err.println("backdrop-core: ${e.message}")
        exitProcess(2)
    } catch (e: IOException) {
        System.err.println("backdrop-core: ${e.message}")
        exitProcess(3)
    }
}
