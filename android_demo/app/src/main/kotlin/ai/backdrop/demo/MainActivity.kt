// The live demo: front camera -> android_demo/core (frame, bucket, state, mask back, feathering,
// compositing) -> the chosen artifact -> blur or replacement on screen, with FPS and per-stage
// latency; a self-test over the bundled golden at start and whenever the artifact changes.
// Everything but moving pixels between CameraX, the runtime and the screen lives in core.
package ai.backdrop.demo

import ai.backdrop.core.Artifact
import ai.backdrop.core.CameraChange
import ai.backdrop.core.GoldenSequence
import ai.backdrop.core.LatencyMeter
import ai.backdrop.core.Manifest
import ai.backdrop.core.ModelRunner
import ai.backdrop.core.Plane
import ai.backdrop.core.SegmentationStream
import ai.backdrop.core.StateForm
import ai.backdrop.core.Yuv420Frame
import ai.backdrop.core.blurBackground
import ai.backdrop.core.checkParity
import ai.backdrop.core.composite
import ai.backdrop.core.featherAlpha
import ai.backdrop.core.featherBand
import ai.backdrop.core.installBundle
import ai.backdrop.core.mirrorRows
import ai.backdrop.core.solidBackground
import ai.backdrop.core.toYuv444
import ai.backdrop.core.yuvToArgb
import android.Manifest.permission.CAMERA
import android.content.pm.PackageManager
import android.content.res.Configuration
import android.graphics.Bitmap
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.io.File
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

private const val TAG = "backdrop-demo"
private const val REPLACEMENT = 0xFF2E7D32.toInt()  // the replacement background: a plain green

class MainActivity : ComponentActivity() {
    /** Every model call, the stream and the runners live on this one thread (the analyzer's). */
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private lateinit var bundleDir: File
    private var manifest: Manifest? = null
    private var stream: SegmentationStream? = null
    private var kind: String? = null  // "format-precision-state_form", the spinner's choice
    private val runners = HashMap<String, ModelRunner>()  // artifact key -> loaded runner
    private val change = CameraChange()
    private val meter = LatencyMeter()
    private val planes = arrayOfNulls<ByteArray>(3)
    @Volatile private var blur = true
    @Volatile private var lensFacing = CameraSelector.LENS_FACING_FRONT
    private var analysis: ImageAnalysis? = null

    private lateinit var output: ImageView
    private lateinit var preview: PreviewView
    private lateinit var stats: TextView
    private lateinit var selfTest: TextView

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) {
            startCamera()
        } else {
            stats.text = "the camera permission is needed for the live view"
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        output = findViewById(R.id.output)
        preview = findViewById(R.id.preview)
        stats = findViewById(R.id.stats)
        selfTest = findViewById(R.id.self_test)
        bundleDir = File(filesDir, "backdrop")
        findViewById<Button>(R.id.switch_camera).setOnClickListener {
            lensFacing = if (lensFacing == CameraSelector.LENS_FACING_FRONT) CameraSelector.LENS_FACING_BACK else CameraSelector.LENS_FACING_FRONT
            worker.execute { stream?.cameraSwitched() }
            startCamera()
        }
        val effect = findViewById<Spinner>(R.id.effect)
        effect.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, listOf("blur", "replace"))
        effect.onItemSelectedListener = selected { blur = it == 0 }
        worker.execute {
            val m = try {
                installBundle({ assets.open("backdrop/$it") }, bundleDir)
            } catch (e: Exception) {  // no bundle (make android-demo not run), a bad manifest, a sha256 mismatch
                Log.e(TAG, "bundle", e)
                runOnUiThread { selfTest.text = "no usable model bundle: ${e.message}" }
                return@execute
            }
            manifest = m
            val kinds = m.artifacts.map { "${it.format}-${it.precision}-${it.stateForm.json}" }.distinct()
            runOnUiThread {
                val spinner = findViewById<Spinner>(R.id.artifact)
                spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, kinds)
                spinner.onItemSelectedListener = selected { i -> worker.execute { choose(m, kinds[i]) } }
                if (ContextCompat.checkSelfPermission(this, CAMERA) == PackageManager.PERMISSION_GRANTED) startCamera()
                else askCamera.launch(CAMERA)
            }
        }
    }

    override fun onConfigurationChanged(newConfig: Configuration) {
        super.onConfigurationChanged(newConfig)
        analysis?.targetRotation = displayRotation()  // the next frame's rotation differs: the stream resets
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            runners.values.forEach { it.close() }
            runners.clear()
        }
        worker.shutdown()
    }

    @Suppress("DEPRECATION")  // Activity.display needs API 30
    private fun displayRotation(): Int = windowManager.defaultDisplay.rotation

    private fun selected(action: (Int) -> Unit) = object : AdapterView.OnItemSelectedListener {
        override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = action(position)
        override fun onNothingSelected(parent: AdapterView<*>?) {}
    }

    /** On the worker: a new runtime / precision / state form: fresh runners and stream, then the self-test. */
    private fun choose(m: Manifest, choice: String) {
        runners.values.forEach { it.close() }
        runners.clear()
        kind = choice
        val (format, precision, form) = choice.split('-')
        val stateForm = if (form == StateForm.EXPLICIT.json) StateForm.EXPLICIT else StateForm.NATIVE
        stream = SegmentationStream(m) { bucket -> m.artifact(bucket.name, format, precision, stateForm) }
        runOnUiThread { selfTest.text = getString(R.string.self_test_running) }
        val lines = m.goldens.map { (bucket, rel) ->
            try {
                val artifact = m.artifact(bucket, format, precision, stateForm)
                val golden = GoldenSequence.load(File(bundleDir, rel))
                "self-test " + checkParity(m, artifact, golden, runnerFor(artifact)).message()
            } catch (e: Exception) {
                "self-test $bucket: FAILED, ${e.message}"
            }
        }
        runOnUiThread { selfTest.text = lines.joinToString("\n") }
    }

    private fun runnerFor(artifact: Artifact): ModelRunner =
        runners.getOrPut(artifact.key) { openRunner(artifact, bundleDir) }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val p = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val a = ImageAnalysis.Builder()
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageRotationEnabled(true)  // upright frames: the model was trained on upright people
                .setTargetRotation(displayRotation())
                .build()
            a.setAnalyzer(worker) { analyze(it) }
            analysis = a
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.Builder().requireLensFacing(lensFacing).build(), p, a)
        }, ContextCompat.getMainExecutor(this))
    }

    /** YUV_420_888 as its planes are, strides and all (each plane's bytes copied once into a reused array; no NV21 re-layout). */
    private fun frameOf(image: ImageProxy): Yuv420Frame {
        val p = Array(3) { i ->
            val plane = image.planes[i]
            val buffer = plane.buffer
            buffer.rewind()
            val n = buffer.remaining()
            val bytes = planes[i]?.takeIf { it.size == n } ?: ByteArray(n).also { planes[i] = it }
            buffer.get(bytes, 0, n)
            Plane(bytes, plane.rowStride, plane.pixelStride)
        }
        return Yuv420Frame(image.width, image.height, p[0], p[1], p[2])
    }

    private fun analyze(image: ImageProxy) {
        val s = stream
        val m = manifest
        try {
            if (s == null || m == null) return
            if (change.changed(lensFacing, analysis?.targetRotation ?: 0, image.width, image.height)) s.cameraSwitched()
            val t0 = System.nanoTime()
            val frame = frameOf(image)
            val feed = s.prepare(frame)
            val t1 = System.nanoTime()
            val runner = runnerFor(feed.artifact)  // loads on a bucket's first frame (not counted as model time)
            val t2 = System.nanoTime()
            val out = runner.run(feed)
            val t3 = System.nanoTime()
            val mask = s.complete(feed, out.mask, out.nextMask)
            val (lo, hi) = featherBand(m.threshold)
            val w = frame.width
            val h = frame.height
            val picture = yuvToArgb(toYuv444(frame), w, h)
            val background = if (blur) blurBackground(picture, w, h) else solidBackground(w, h, REPLACEMENT)
            val shown = composite(picture, background, featherAlpha(mask, lo, hi))
            if (lensFacing == CameraSelector.LENS_FACING_FRONT) mirrorRows(shown, w, h)
            val t4 = System.nanoTime()
            meter.add((t1 - t0) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6, t4)
            val bitmap = Bitmap.createBitmap(shown, w, h, Bitmap.Config.ARGB_8888)
            val text = "${meter.summary()}\n${feed.artifact.key} ${w}x$h -> ${feed.bucket.name}"
            runOnUiThread {
                output.setImageBitmap(bitmap)
                stats.text = text
            }
        } catch (e: RuntimeException) {  // a runtime error on one frame: start the state afresh, say so
            Log.e(TAG, "frame", e)
            s?.reset()
            runOnUiThread { stats.text = "frame failed: ${e.message}" }
        } finally {
            image.close()
        }
    }
}
