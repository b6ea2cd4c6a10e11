// One camera stream through the exported artifacts: per frame, the bucket, the placement, the
// model input in the artifact's dtype and the state its state form wants (docs/manifest.md
// "State forms"), then the model's mask mapped back to the frame. The model call itself is the
// app's (Core ML through BackdropKitCoreML, or ExecuTorch); everything around it is here, so it
// is tested on Linux against the goldens (android_demo/core's Stream.kt is the Kotlin twin).
//
//   let stream = SegmentationStream(manifest: m) { bucket in
//       try m.artifact(bucket: bucket.name, format: "coreml", precision: "fp16", stateForm: .native) }
//   let feed = try stream.prepare(frame, range: .full)   // frame: YUV420Frame of the camera's 420f buffer
//   ... run feed.artifact with feed.input and feed.prevMask (explicit) or feed.resetInput (native) ...
//   let mask = try stream.complete(feed, mask: out, nextMask: next)  // float32 (H, W) person probability
//
// The state is reset (zeros as prev_mask, or reset = 1) on the first frame, when the frame moves
// to another bucket (models/reference.py ReferencePredictor does the same), and on the next
// frame after cameraSwitched(), sceneCut() or reset() (and when artifactFor picks another artifact). With Core ML's native form the state is
// an MLState the runtime keeps: `feed.reset` says when to pass reset = 1 (or make a fresh state).
import Foundation

/// A tensor's values in the dtype the artifact lists (docs/formats.md: Core ML takes float16).
public enum TensorValues: Equatable, Sendable {
    case float32([Float])
    case float16([Float16])

    /// Zeros of `dtype`.
    public static func zeros(_ dtype: TensorDType, count: Int) -> TensorValues {
        switch dtype {
        case .float32: return .float32([Float](repeating: 0, count: count))
        case .float16: return .float16([Float16](repeating: 0, count: count))
        }
    }

    /// float32 values converted to `dtype` (`Float16(x)`: round to nearest, ties to even).
    public static func from(_ values: [Float], as dtype: TensorDType) -> TensorValues {
        switch dtype {
        case .float32: return .float32(values)
        case .float16: return .float16(toFloat16(values))
        }
    }

    public var dtype: TensorDType {
        switch self {
        case .float32: return .float32
        case .float16: return .float16
        }
    }

    public var count: Int {
        switch self {
        case let .float32(v): return v.count
        case let .float16(v): return v.count
        }
    }

    /// Same dtype and the same bit pattern in every element (unlike `==`, which takes -0 for 0
    /// and no NaN for itself).
    public func bitPatternsEqual(_ other: TensorValues) -> Bool {
        switch (self, other) {
        case let (.float32(a), .float32(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
        case let (.float16(a), .float16(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
        default: return false
        }
    }

    /// The values as float32 (float16 widens exactly).
    public var floats: [Float] {
        switch self {
        case let .float32(v): return v
        case let .float16(v): return toFloat32(v)
        }
    }
}

/// What the app feeds the model for one frame.
public struct ModelFeed: Sendable {
    /// Counts the stream's frames from 0.
    public let sequence: Int
    public let width: Int
    public let height: Int
    public let bucket: Bucket
    public let placement: Placement
    public let artifact: Artifact
    /// The artifact's `frame` input, (1, 3, Hb, Wb) channel-first, in its dtype.
    public let input: TensorValues
    /// True when the state was reset before this frame.
    public let reset: Bool
    /// Explicit state form: `prev_mask`, (1, 1, Hb, Wb) in its dtype: zeros after a reset, else
    /// the last `next_mask` unchanged. nil for the native form.
    public let prevMask: TensorValues?

    /// Native state form: the `reset` input's one value, 1 after a reset, else 0.
    public var resetFlag: Float { reset ? 1 : 0 }

    /// Native state form: the `reset` input, (1,) in its dtype; nil for the explicit form.
    public var resetInput: TensorValues? {
        guard artifact.stateForm == .native, let spec = artifact.stateInput,
              let dtype = TensorDType(rawValue: spec.dtype) else { return nil }
        return .from([resetFlag], as: dtype)
    }
}

/// One camera stream: call `prepare` for each frame, run the model, then `complete`.
public final class SegmentationStream {
    public let manifest: Manifest
    /// The artifact the app runs for a bucket (its runtime, precision and state form).
    public let artifactFor: (Bucket) throws -> Artifact

    private var lastArtifact: String?  // its key names the bucket too
    private var pendingReset = true
    private var state: TensorValues?  // explicit: the last next_mask
    private var sequence = 0
    private var outstanding: Int?

    public init(manifest: Manifest, artifactFor: @escaping (Bucket) throws -> Artifact) {
        self.manifest = manifest
        self.artifactFor = artifactFor
    }

    /// The camera changed (front/back, or a format change): reset on the next frame.
    public func cameraSwitched() { pendingReset = true }

    /// The picture changed entirely (a cut): reset on the next frame.
    public func sceneCut() { pendingReset = true }

    /// Forget the state (e.g. after a failed model call): reset on the next frame.
    public func reset() {
        pendingReset = true
        state = nil
    }

    /// The feed for one camera frame: YUV444 (`range`: `.full` for `420f`, `.video` for
    /// `420v`), the bucket by the manifest's rule, the model input and the state.
    /// - Throws: `PreprocessError` (frame size, the 2x aspect limit), `ManifestError` (an
    ///   artifact of another bucket, or inputs of a dtype this library does not feed).
    public func prepare(_ frame: YUV420Frame, range: ColorRange = .full) throws -> ModelFeed {
        try prepare(yuv444: frame.yuv444(range: range), width: frame.width, height: frame.height)
    }

    /// `prepare` for a frame already converted to uint8 YUV444 (height, width, 3), full range
    /// (e.g. by `YUV420Frame.yuv444(yPlane:...)` straight from a locked `CVPixelBuffer`).
    public func prepare(yuv444: [UInt8], width: Int, height: Int) throws -> ModelFeed {
        let bucket = try manifest.selectBucket(height: height, width: width)
        let artifact = try artifactFor(bucket)
        if artifact.bucket != bucket.name {
            throw ManifestError("artifactFor(\(bucket.name)) returned \(artifact.key), an artifact of bucket \(artifact.bucket)")
        }
        let frameType = try artifact.frameInput.elementType(of: artifact.key)
        var stateType: TensorDType?
        if let s = artifact.stateInput { stateType = try s.elementType(of: artifact.key) }
        let placement = try plan(srcHeight: height, srcWidth: width, bucket: bucket)
        let input = TensorValues.from(try modelInput(yuv444: yuv444, placement: placement), as: frameType)
        let explicit = artifact.stateForm == .explicit
        // A change of artifact within the bucket (another precision or state form) resets too.
        let reset = pendingReset || lastArtifact != artifact.key || (explicit && state == nil)
        if reset { state = nil }
        var prevMask: TensorValues?
        if explicit {
            guard let dtype = stateType else {
                throw ManifestError("\(artifact.key) has the explicit state form but no prev_mask input")
            }
            prevMask = state ?? .zeros(dtype, count: bucket.height * bucket.width)
        }
        pendingReset = false
        lastArtifact = artifact.key
        let feed = ModelFeed(sequence: sequence, width: width, height: height, bucket: bucket, placement: placement,
                             artifact: artifact, input: input, reset: reset, prevMask: prevMask)
        outstanding = sequence
        sequence += 1
        return feed
    }

    /// The model's outputs for `feed`: `mask` (1, 1, Hb, Wb) and, for the explicit state form,
    /// `next_mask`, kept unchanged as the next frame's `prev_mask` (only for the latest feed:
    /// completing an older one maps its mask back but keeps the state). Returns the float32
    /// (H, W) person probability in the camera frame (buckets.py `from_bucket`).
    /// - Throws: `PreprocessError` for a wrong-size output or a missing `next_mask`.
    public func complete(_ feed: ModelFeed, mask: TensorValues, nextMask: TensorValues? = nil) throws -> [Float] {
        let n = feed.bucket.height * feed.bucket.width
        if mask.count != n {
            throw PreprocessError("mask has \(mask.count) values; bucket \(feed.bucket) needs \(n)")
        }
        let latest = outstanding == feed.sequence
        if feed.artifact.stateForm == .explicit {
            guard let next = nextMask else {
                throw PreprocessError("\(feed.artifact.key) has the explicit state form: pass its next_mask output")
            }
            if next.count != n {
                throw PreprocessError("next_mask has \(next.count) values; bucket \(feed.bucket) needs \(n)")
            }
            if let want = feed.prevMask?.dtype, next.dtype != want {
                throw PreprocessError("next_mask is \(next.dtype.rawValue) but \(feed.artifact.key) takes a \(want.rawValue) "
                                        + "prev_mask; pass the model's next_mask output unchanged")
            }
            if latest { state = next }
        }
        if latest { outstanding = nil }
        return try fromBucket(mask.floats, placement: feed.placement)
    }
}
