// Writing a file whole or not at all, for every output the library writes (command-line arrays,
// conformance results, results documents): a reader never sees half a file.
package ai.backdrop.core

import java.io.File
import java.io.IOException

/** Write [bytes] to [target] through a temporary file next to it and a rename; nothing is left on failure. */
fun writeAtomically(target: File, bytes: ByteArray) {
    val tmp = File(target.path + ".tmp")
    try {
        tmp.writeBytes(bytes)
    } catch (e: IOException) {
        tmp.delete()
        throw IOException("cannot write $tmp: ${e.message}", e)
    }
    if (!tmp.renameTo(target)) {
        tmp.delete()
        throw IOException("cannot rename $tmp to $target")
    }
}
