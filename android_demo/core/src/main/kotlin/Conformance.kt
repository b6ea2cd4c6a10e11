// The conformance harness: reads a BDCC case file, runs each case through this library and
// writes a BDCR results file, so that `backdrop conformance --impl kotlin` holds the Kotlin
// preprocessing to the Python reference bit for bit. The file formats are documented at the top
// of device_tests/conformance.py (little-endian throughout).
//
//   java -cp ... ai.backdrop.core.ConformanceKt --cases cases.bdcc --out results.bdcr
//
// Exit status: 0 when the results were written (rejections included), 2 for bad arguments or a
// malformed case file, 3 for a failed write; one line on stderr otherwise.
package ai.backdrop.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess

private class CaseFileError(message: String) : Exception(message)

private const val LAYOUT_NV21 = 0
private const val LAYOUT_NV12 = 1
private const val LAYOUT_I420 = 2

/** One case's four outputs (device_tests/conformance.py), or the rejection message. */
internal fun runCase(layout: Int, range: Int, width: Int, height: Int, rowStride: Int, bucketHeight: Int, bucketWidth: Int,
                     buffer: ByteArray, bucketMask: FloatArray): ByteArray {
    val frame = when (layout) {
        LAYOUT_NV21 -> Yuv420Frame.nv21(buffer, width, height, rowStride)
        LAYOUT_NV12 -> Yuv420Frame.nv12(buffer, width, height, rowStride)
        LAYOUT_I420 -> Yuv420Frame.i420(buffer, width, height, rowStride)
        else -> throw CaseFileError("layout $layout is not 0 (NV21), 1 (NV12) or 2 (I420)")
    }
    val colorRange = when (range) {
        0 -> ColorRange.FULL
        1 -> ColorRange.VIDEO
        else -> throw CaseFileError("color range $range is not 0 (full) or 1 (video)")
    }
    val placement = plan(height, width, bucketHeight, bucketWidth)
    val yuv = toYuv444(frame, colorRange)
    val input = modelInput(yuv, placement)
    val mask = fromBucket(bucketMask, placement)
    val record = ByteBuffer.allocate(4 + 24 + yuv.size + 4 * input.size + 4 * mask.size).order(ByteOrder.LITTLE_ENDIAN)
    record.putInt(0)
    for (v in intArrayOf(placement.scaledHeight, placement.scaledWidth, placement.padTop, placement.padBottom,
        placement.padLeft, placement.padRight)) record.putInt(v)
    record.put(yuv)
    for (v in input) record.putFloat(v)
    for (v in mask) record.putFloat(v)
    return record.array()
}

private fun rejection(message: String): ByteArray {
    val text = message.toByteArray(Charsets.UTF_8)
    val record = ByteBuffer.allocate(8 + text.size).order(ByteOrder.LITTLE_ENDIAN)
    record.putInt(1).putInt(text.size).put(text)
    return record.array()
}

private fun convert(cases: ByteArray): ByteArray {
    val b = ByteBuffer.wrap(cases).order(ByteOrder.LITTLE_ENDIAN)
    fun need(n: Long, what: String) {
        if (b.remaining() < n) throw CaseFileError("case file ends inside $what")
    }
    need(12, "its header")
    val magic = ByteArray(4)
    b.get(magic)
    if (String(magic, Charsets.ISO_8859_1) != "BDCC") throw CaseFileError("not a case file (magic is not BDCC)")
    val version = b.int
    if (version != 1) throw CaseFileError("case file version $version is not 1")
    val n = b.int
    val results = ByteArrayOutputStream()
    val header = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN)
    header.put("BDCR".toByteArray(Charsets.ISO_8859_1)).putInt(1).putInt(n)
    results.write(header.array())
    for (i in 0 until n) {
        need(36, "case $i's fields")
        val f = IntArray(9) { b.int }
        val (nameBytes, layout, range) = Triple(f[0], f[1], f[2])
        val width = f[3]
        val height = f[4]
        val rowStride = f[5]
        val bucketHeight = f[6]
        val bucketWidth = f[7]
        val bufferBytes = f[8]
        if (nameBytes < 0 || bufferBytes < 0 || bucketHeight < 0 || bucketWidth < 0) throw CaseFileError("case $i: a size is negative")
        need(nameBytes.toLong(), "case $i's name")
        b.position(b.position() + nameBytes)
        need(bufferBytes.toLong(), "case $i's buffer")
        val buffer = ByteArray(bufferBytes)
        b.get(buffer)
        val maskValues = bucketHeight.toLong() * bucketWidth
        need(4 * maskValues, "case $i's bucket mask")
        val mask = FloatArray(maskValues.toInt()) { b.float }
        val record = try {
            runCase(layout, range, width, height, rowStride, bucketHeight, bucketWidth, buffer, mask)
        } catch (e: PreprocessError) {
            rejection(e.message ?: "rejected")
        }
        results.write(record)
    }
    if (b.remaining() != 0) throw CaseFileError("case file has ${b.remaining()} bytes after its $n cases")
    return results.toByteArray()
}

fun main(args: Array<String>) {
    var cases: String? = null
    var out: String? = null
    for (arg in args) {
        when {
            arg.startsWith("--cases=") -> cases = arg.substring(8)
            arg.startsWith("--out=") -> out = arg.substring(6)
        }
    }
    var k = 0
    while (k < args.size - 1) {
        if (args[k] == "--cases") cases = args[k + 1]
        if (args[k] == "--out") out = args[k + 1]
        k++
    }
    if (cases == null || out == null) {
        System.err.println("backdrop-conformance (kotlin): usage: --cases CASES.bdcc --out RESULTS.bdcr")
        exitProcess(2)
    }
    val results = try {
        convert(File(cases).readBytes())
    } catch (e: CaseFileError) {
        System.err.println("backdrop-conformance (kotlin): $cases: ${e.message}")
        exitProcess(2)
    } catch (e: IOException) {
        System.err.println("backdrop-conformance (kotlin): cannot read $cases: ${e.message}")
        exitProcess(2)
    }
    try {
        writeAtomically(File(out), results)
    } catch (e: IOException) {
        System.err.println("backdrop-conformance (kotlin): cannot write $out: ${e.message}")
        exitProcess(3)
    }
}
