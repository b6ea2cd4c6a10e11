// NumPy .npy / .npz reading and .npy writing for the arrays backdrop exchanges with app code
// (goldens, conformance cases): little-endian uint8, bool, int64, float32 and fixed-width
// unicode, C order. The header is NumPy's documented format (a Python dict literal with
// 'descr', 'fortran_order', 'shape'); anything else is refused with the reason.
package ai.backdrop.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.io.InputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.ZipFile

class NpyError(message: String) : IllegalArgumentException(message)

/** One array: its dtype descr (e.g. "<f4", "|u1", "<U12"), shape and raw little-endian bytes. */
class NpyArray(val descr: String, val shape: IntArray, val data: ByteArray) {
    val count: Int get() = shape.fold(1) { a, b -> a * b }

    private fun need(vararg descrs: String) {
        if (descr !in descrs) throw NpyError("array is ${descr}, expected one of ${descrs.joinToString()}")
    }

    fun floats(): FloatArray {
        need("<f4")
        val out = FloatArray(count)
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out)
        return out
    }

    fun longs(): LongArray {
        need("<i8")
        val out = LongArray(count)
        ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out)
        return out
    }

    fun bytes(): ByteArray {
        need("|u1", "|b1")
        return data
    }

    fun booleans(): BooleanArray {
        need("|b1")
        return BooleanArray(count) { data[it].toInt() != 0 }
    }

    /** A fixed-width unicode array ("<Un": n UTF-32LE code points per item, NUL padded). */
    fun strings(): List<String> {
        if (!descr.startsWith("<U")) throw NpyError("array is $descr, expected a unicode string array")
        val width = descr.substring(2).toInt()
        val buffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)
        return (0 until count).map { item ->
            val sb = StringBuilder()
            for (k in 0 until width) {
                val cp = buffer.getInt((item * width + k) * 4)
                if (cp == 0) break
                sb.appendCodePoint(cp)
            }
            sb.toString()
        }
    }

    fun string(): String = strings().single()

    /** Item [index] along the first axis as its own array. */
    fun row(index: Int): NpyArray {
        val rowShape = shape.copyOfRange(1, shape.size)
        val n = data.size / shape[0]
        return NpyArray(descr, rowShape, data.copyOfRange(index * n, (index + 1) * n))
    }
}

object Npy {
    private val MAGIC = byteArrayOf(0x93.toByte(), 'N'.toByte(), 'U'.toByte(), 'M'.toByte(), 'P'.toByte(), 'Y'.toByte())
    private val ITEM_SIZE = mapOf("|u1" to 1, "|b1" to 1, "<i8" to 8, "<f4" to 4)

    fun read(file: File): NpyArray = file.inputStream().use { read(it, file.path) }

    fun read(stream: InputStream, name: String): NpyArray {
        val all = stream.readBytes()
        if (all.size < 10 || !all.copyOfRange(0, 6).contentEquals(MAGIC)) throw NpyError("$name is not a .npy file")
        val major = all[6].toInt()
        val headerLength: Int
        val start: Int
        if (major == 1) {
            headerLength = (all[8].toInt() and 0xff) or ((all[9].toInt() and 0xff) shl 8)
            start = 10
        } else if (major == 2 || major == 3) {
            headerLength = ByteBuffer.wrap(all, 8, 4).order(ByteOrder.LITTLE_ENDIAN).int
            start = 12
        } else {
            throw NpyError("$name: .npy version $major is not supported")
        }
        val header = String(all, start, headerLength, Charsets.ISO_8859_1)
        val descr = Regex("'descr'\\s*:\\s*'([^']+)'").find(header)?.groupValues?.get(1)
            ?: throw NpyError("$name: header has no descr: $header")
        if (Regex("'fortran_order'\\s*:\\s*True").containsMatchIn(header)) throw NpyError("$name: Fortran order is not supported")
        val shapeText = Regex("'shape'\\s*:\\s*\\(([^)]*)\\)").find(header)?.groupValues?.get(1)
            ?: throw NpyError("$name: header has no shape: $header")
        val shape = shapeText.split(",").map { it.trim() }.filter { it.isNotEmpty() }.map { it.toInt() }.toIntArray()
        val item = ITEM_SIZE[descr] ?: if (descr.startsWith("<U")) 4 * descr.substring(2).toInt()
            else throw NpyError("$name: dtype $descr is not supported")
        val count = shape.fold(1) { a, b -> a * b }
        val body = start + headerLength
        if (all.size - body != count * item) {
            throw NpyError("$name: ${all.size - body} data bytes for shape ${shape.joinToString("x")} of $descr")
        }
        return NpyArray(descr, shape, all.copyOfRange(body, all.size))
    }

    /** Every array of a .npz (a zip of .npy files), by name without ".npy". */
    fun readNpz(file: File): Map<String, NpyArray> = ZipFile(file).use { zip ->
        zip.entries().toList().filter { it.name.endsWith(".npy") }.associate { entry ->
            entry.name.removeSuffix(".npy") to zip.getInputStream(entry).use { read(it, "${file.path}:${entry.name}") }
        }
    }

    /** A float32 C-order array as .npy bytes. */
    fun floats(values: FloatArray, shape: IntArray): ByteArray {
        val data = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        data.asFloatBuffer().put(values)
        return encode("<f4", shape, data.array())
    }

    fun encode(descr: String, shape: IntArray, data: ByteArray): ByteArray {
        val dims = if (shape.size == 1) "${shape[0]}," else shape.joinToString(", ")
        var header = "{'descr': '$descr', 'fortran_order': False, 'shape': ($dims), }"
        val pad = (64 - (10 + header.length + 1) % 64) % 64
        header += " ".repeat(pad) + "\n"
        val out = ByteArrayOutputStream()
        out.write(MAGIC)
        out.write(byteArrayOf(1, 0, (header.length and 0xff).toByte(), (header.length shr 8).toByte()))
        out.write(header.toByteArray(Charsets.ISO_8859_1))
        out.write(data)
        return out.toByteArray()
    }
}
