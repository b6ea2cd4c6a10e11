// Benchmark mode, started over adb (android_demo/README.md has the commands):
//
//   adb shell am start -n ai.backdrop.demo/.BenchmarkActivity --es artifacts KEY,KEY --ei rounds N ...
//
// runs the bundled goldens through each chosen artifact (parity, as scripts/run_from_manifest.py),
// then the bench protocol of `backdrop bench` (BenchRunner in android_demo/core), and writes the
// results document into the app's external files dir for `adb pull` + `backdrop results import`.
// The file is written whole (renamed into place) as the last step; a failure writes
// <out>.error.txt instead. Logcat tag backdrop-bench says "done PATH" or "failed: ...".
package ai.backdrop.demo

import ai.backdrop.core.BenchRequest
import ai.backdrop.core.BenchRunner
import ai.backdrop.core.DeviceDescription
import ai.backdrop.core.GoldenSequence
import ai.backdrop.core.ProcStatusMemory
import ai.backdrop.core.ResultsDocument
import ai.backdrop.core.RunContext
import ai.backdrop.core.checkParity
import ai.backdrop.core.currentCpu
import ai.backdrop.core.installBundle
import android.os.Build
import android.os.Bundle
import android.util.Log
import android.widget.TextView
import androidx.activity.ComponentActivity
import java.io.File
import java.util.Locale
import java.util.UUID

private const val TAG = "backdrop-bench"

private const val E2E_NOTE = "measured in the app (android_demo benchmark mode) on one background thread: model = the " +
    "runtime's call alone; e2e = YUV camera buffer -> android_demo/core preprocessing (Kotlin, bit-exact with the " +
    "reference) -> model -> mask at the camera frame's size"

class BenchmarkActivity : ComponentActivity() {
    private lateinit var log: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_benchmark)
        log = findViewById(R.id.log)
        val extras = intent.extras
        @Suppress("DEPRECATION")  // Bundle.get(String): --es and --ei extras alike, as text
        val request = extras?.keySet()?.associateWith { extras.get(it).toString() } ?: emptyMap()
        Thread({ bench(request) }, "backdrop-bench").start()
    }

    private fun say(line: String) {
        Log.i(TAG, line)
        runOnUiThread { log.append("\n$line") }
    }

    private fun bench(extras: Map<String, String>) {
        val outDir = getExternalFilesDir(null) ?: filesDir
        val name = extras["out"]?.takeIf { it.isNotEmpty() && !it.contains('/') && !it.startsWith(".") } ?: "backdrop-results.json"
        val out = File(outDir, name)
        val error = File(outDir, "$name.error.txt")
        out.delete()
        error.delete()
        try {
            val request = BenchRequest.fromExtras(extras)
            val dir = File(filesDir, "backdrop")
            val manifest = installBundle({ assets.open("backdrop/$it") }, dir)
            val manifestText = File(dir, "manifest.json").readText()
            val goldens = manifest.goldens.mapValues { (_, rel) -> GoldenSequence.load(File(dir, rel)) }
            val artifacts = request.select(manifest)
            val threads = request.protocol.threads
            val notes = ArrayList<String>()
            for (a in artifacts) {
                val golden = goldens[a.bucket] ?: continue
                val line = try {
                    val runner = openRunner(a, dir, threads)
                    try {
                        checkParity(manifest, a, golden, runner, request.minIou).message()
                    } finally {
                        runner.close()
                    }
                } catch (e: Exception) {  // the runtime refused the file: the bench round will say so too
                    "parity ${a.key}: FAILED, cannot load: ${e.javaClass.simpleName}: ${e.message}"
                }
                notes.add(line)
                say(line)
            }
            notes.add(E2E_NOTE)
            say("protocol ${request.protocol.name}: ${request.protocol.rounds} rounds, >= ${request.protocol.minFrames} frames and " +
                ">= ${request.protocol.minSeconds} s per artifact")
            val run = BenchRunner(
                manifest, request.protocol, goldens, load = { openRunner(it, dir, threads) },
                gateReadings = { batteryReadings(this) }, memory = ProcStatusMemory(), cpu = { currentCpu() },
                progress = { key, done, total -> say("$done/$total $key") },
            ).run(artifacts)
            val context = RunContext.fromManifest(manifestText, host = "${Build.MANUFACTURER} ${Build.MODEL}", notes = notes,
                session = UUID.randomUUID().toString().replace("-", ""))
            val doc = ResultsDocument.build(run, context, DeviceDescription.of(deviceInfo(this)))
            ResultsDocument.write(doc, out)
            // what the store will compute on import (the same numbers: LatencyStats is stats.py's arithmetic)
            for ((key, metrics) in ResultsDocument.statistics(doc).entrySet()) {
                val line = metrics.asJsonObject.entrySet().joinToString("; ") { (metric, st) ->
                    val o = st.asJsonObject
                    String.format(Locale.ROOT, "%s p50 %.2f ms [%.2f, %.2f]", metric, o["p50"].asDouble, o["median_ci_low"].asDouble,
                        o["median_ci_high"].asDouble)
                }
                say("$key: $line")
            }
            say("done ${out.absolutePath}")
        } catch (e: Exception) {  // any failure ends the run: say it where adb can read it
            Log.e(TAG, "failed", e)
            error.writeText("${e.javaClass.simpleName}: ${e.message}\n")
            say("failed: ${e.javaClass.simpleName}: ${e.message} (${error.absolutePath})")
        }
    }
}
