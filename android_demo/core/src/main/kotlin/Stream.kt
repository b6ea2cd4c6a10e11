// One camera stream through the exported artifacts: per frame, the bucket, the placement, the
// model input and the state the artifact's state form wants (docs/manifest.md "State forms"),
// then the model's mask mapped back to the frame. The model call itself is the app's (ExecuTorch,
// ONNX Runtime); everything around it is here, so it is tested on the JVM against the goldens.
//
//   val stream = SegmentationStream(manifest) { bucket -> manifest.artifact(bucket.name, "executorch", "fp32", StateForm.EXPLICIT) }
//   val feed = stream.prepare(frame)                // frame: Yuv420Frame from the camera
//   ... run feed.artifact with feed.input and (explicit) feed.prevMask or (native) feed.resetFlag ...
//   val mask = stream.complete(feed, mask, nextMask) // float32 (H, W) person probability
//
// The state is reset (zeros as prev_mask, or reset = 1.0) on the first frame, when the frame
// moves to another bucket (models/reference.py ReferencePredictor does the same), and on the
// next frame after cameraSwitched(), sceneCut() or reset().
package ai.backdrop.core

/** What the app feeds the model for one frame. */
class ModelFeed internal constructor(
    val sequence: Long,
    val width: Int,
    val height: Int,
    val bucket: Bucket,
    val placement: Placement,
    val artifact: Artifact,
    /** float32 (1, 3, Hb, Wb) channel-first, the artifact's `frame` input. */
    val input: FloatArray,
    /** True when the state was reset before this frame. */
    val reset: Boolean,
    /** Explicit state form: float32 (1, 1, Hb, Wb) `prev_mask` (zeros after a reset); null for native. */
    val prevMask: FloatArray?
) {
    /** Native state form: the `reset` input's one value, 1.0 after a reset, else 0.0. */
    val resetFlag: Float get() = if (reset) 1.0f else 0.0f
}

class SegmentationStream(
    val manifest: Manifest,
    val colorRange: ColorRange = ColorRange.FULL,
    /** The artifact the app runs for a bucket (its runtime, precision and state form). */
    val artifactFor: (Bucket) -> Artifact
) {
    private var lastBucket: String? = null
    private var pendingReset = true
    private var state: FloatArray? = null  // explicit: the last next_mask
    private var sequence = 0L
    private var outstanding: ModelFeed? = null

    /** The camera changed (front/back, or a rotation that changes the frame): reset on the next frame. */
    fun cameraSwitched() {
        pendingReset = true
    }

    /** The picture changed entirely (a cut): reset on the next frame. */
    fun sceneCut() {
        pendingReset = true
    }

    /** Forget the state (e.g. after a failed model call): reset on the next frame. */
    fun reset() {
        pendingReset = true
        state = null
    }

    /** The feed for one camera frame. */
    fun prepare(frame: Yuv420Frame): ModelFeed {
        val bucket = manifest.selectBucket(frame.height, frame.width)
        val artifact = artifactFor(bucket)
        if (artifact.bucket != bucket.name) {
            throw ManifestError("artifactFor(${bucket.name}) returned ${artifact.key}, an artifact of bucket ${artifact.bucket}")
        }
        checkFloat32Input(artifact)
        val placement = plan(frame.height, frame.width, bucket.height, bucket.width)
        val input = modelInput(toYuv444(frame, colorRange), placement)
        val reset = pendingReset || lastBucket != bucket.name || (artifact.stateForm == StateForm.EXPLICIT && state == null)
        val prevMask = if (artifact.stateForm == StateForm.EXPLICIT) {
            val s = state
            if (reset || s == null) FloatArray(bucket.height * bucket.width) else s
        } else null
        pendingReset = false
        lastBucket = bucket.name
        if (reset) state = null
        val feed = ModelFeed(sequence++, frame.width, frame.height, bucket, placement, artifact, input, reset, prevMask)
        outstanding = feed
        return feed
    }

    /**
     * The model's outputs for [feed]: `mask` (1, 1, Hb, Wb) and, for the explicit state form,
     * `next_mask`, fed back unchanged as the next frame's `prev_mask`. Returns the float32
     * (H, W) person probability in the camera frame (buckets.py from_bucket).
     */
    fun complete(feed: ModelFeed, mask: FloatArray, nextMask: FloatArray? = null): FloatArray {
        val n = feed.bucket.height * feed.bucket.width
        if (mask.size != n) throw PreprocessError("mask has ${mask.size} values; bucket ${feed.bucket.name} needs $n")
        if (feed.artifact.stateForm == StateForm.EXPLICIT) {
            if (nextMask == null) throw PreprocessError("${feed.artifact.key} has the explicit state form: pass its next_mask output")
            if (nextMask.size != n) throw PreprocessError("next_mask has ${nextMask.size} values; bucket ${feed.bucket.name} needs $n")
            if (outstanding === feed) state = nextMask.copyOf()
        }
        if (outstanding === feed) outstanding = null
        return fromBucket(mask, feed.placement)
    }

    private fun checkFloat32Input(a: Artifact) {
        val bad = (listOf(a.frameInput) + if (a.stateForm == StateForm.EXPLICIT) a.inputs.drop(1) else emptyList())
            .firstOrNull { it.dtype != "float32" }
        if (bad != null) {
            throw ManifestError("${a.key}: input ${bad.name} is ${bad.dtype}; this library feeds float32 inputs " +
                "(the Android target's artifacts all take float32)")
        }
    }
}
