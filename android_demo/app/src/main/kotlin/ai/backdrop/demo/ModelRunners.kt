// The one place the app touches the runtimes: an artifact file in, ModelRunner (android_demo/core)
// out. Inputs are bound in the manifest's order: ExecuTorch by position, ONNX Runtime by name.
//
// ExecuTorch's Android API as its docs show it (docs/source/using-executorch-android.md and
// extension/android/.../Module: Module.load(path), loadMethod, forward(vararg EValue),
// Tensor.fromBlob(float[], long[]), EValue.toTensor().dataAsFloatArray). Not compiled here:
// checked against the sources of a recent executorch main, not against the 1.5.1 AAR itself.
package ai.backdrop.demo

import ai.backdrop.core.Artifact
import ai.backdrop.core.BenchError
import ai.backdrop.core.ModelFeed
import ai.backdrop.core.ModelOutput
import ai.backdrop.core.ModelRunner
import ai.backdrop.core.StateForm
import ai.backdrop.core.TensorSpec
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File
import java.nio.FloatBuffer

private fun shapeOf(spec: TensorSpec): LongArray = LongArray(spec.shape.size) { spec.shape[it].toLong() }

/** The artifact's second input: prev_mask (explicit) or the one-value reset flag (native). */
private fun secondInput(artifact: Artifact, feed: ModelFeed): FloatArray =
    if (artifact.stateForm == StateForm.EXPLICIT) feed.prevMask!! else floatArrayOf(feed.resetFlag)

/** Load [artifact] (a file under [dir] at its manifest path) with its manifest runtime. */
fun openRunner(artifact: Artifact, dir: File, threads: Int = 0): ModelRunner {
    val file = File(dir, artifact.path)
    return when (artifact.runtime) {
        "executorch-xnnpack" -> ExecuTorchRunner(artifact, file)
        "onnxruntime", "onnxruntime-ortformat" -> OrtRunner(artifact, file, threads)
        else -> throw BenchError("${artifact.key}: this app links no runtime for ${artifact.runtime}; " +
            "bundle ExecuTorch or ONNX Runtime artifacts (make android-demo ANDROID_DEMO_ARGS=--formats ...)")
    }
}

class ExecuTorchRunner(private val artifact: Artifact, file: File) : ModelRunner {
    private val module: Module = Module.load(file.absolutePath)

    init {
        module.loadMethod("forward")  // so that the timed load includes the method's setup, not the first frame
    }

    /** The XNNPACK thread pool's own default; the Java API does not say how many. */
    override val threads = 0
    override val runtimeVersions = mapOf("executorch-android" to BuildConfig.EXECUTORCH_VERSION)

    override fun run(feed: ModelFeed): ModelOutput {
        val frame = Tensor.fromBlob(feed.input, shapeOf(artifact.inputs[0]))
        val second = Tensor.fromBlob(secondInput(artifact, feed), shapeOf(artifact.inputs[1]))
        val out = module.forward(EValue.from(frame), EValue.from(second))
        val mask = out[0].toTensor().dataAsFloatArray
        val next = if (artifact.stateForm == StateForm.EXPLICIT) out[1].toTensor().dataAsFloatArray else null
        return ModelOutput(mask, next)
    }

    override fun close() = module.destroy()
}

class OrtRunner(private val artifact: Artifact, file: File, override val threads: Int) : ModelRunner {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession

    init {
        val options = OrtSession.SessionOptions()
        if (threads > 0) options.setIntraOpNumThreads(threads)
        session = env.createSession(file.absolutePath, options)  // .onnx and .ort alike
    }

    override val runtimeVersions = mapOf("onnxruntime-android" to BuildConfig.ONNXRUNTIME_VERSION)

    override fun run(feed: ModelFeed): ModelOutput {
        val inputs = linkedMapOf(
            artifact.inputs[0].name to OnnxTensor.createTensor(env, FloatBuffer.wrap(feed.input), shapeOf(artifact.inputs[0])),
            artifact.inputs[1].name to OnnxTensor.createTensor(env, FloatBuffer.wrap(secondInput(artifact, feed)), shapeOf(artifact.inputs[1])),
        )
        try {
            session.run(inputs).use { result ->
                fun output(i: Int): FloatArray {
                    val buffer = (result.get(artifact.outputs[i].name).get() as OnnxTensor).floatBuffer
                    return FloatArray(buffer.remaining()).also { buffer.get(it) }
                }
                return ModelOutput(output(0), if (artifact.stateForm == StateForm.EXPLICIT) output(1) else null)
            }
        } finally {
            inputs.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()
}
