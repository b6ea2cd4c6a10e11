// What the app's live view needs besides pixels (Core Image composites those on the GPU in the
// app): the rule that resets the stream when the camera changes, and the latency meter behind
// the FPS and per-stage numbers on screen. Kept here so that they are tested on Linux.
import Foundation

/// Watches the camera's frames and says when the stream must reset: another camera (front /
/// back), another frame size (a rotation or a format change) or another pixel format (420f / 420v).
public struct CameraChangeRule {
    private var last: (camera: String, width: Int, height: Int, format: UInt32)?

    public init() {}

    /// True when this frame comes from another camera, size or format than the previous one
    /// (not for the first frame: the stream resets on its first frame anyway).
    public mutating func changed(camera: String, width: Int, height: Int, pixelFormat: UInt32) -> Bool {
        defer { last = (camera, width, height, pixelFormat) }
        guard let l = last else { return false }
        return l.camera != camera || l.width != width || l.height != height || l.format != pixelFormat
    }
}

/// The stages of one live frame, timed by the app.
public enum Stage: String, CaseIterable, Sendable {
    /// Locked CVPixelBuffer -> YUV444.
    case yuv
    /// Bucket, placement, resize, padding, / 255, float16 (SegmentationStream.prepare).
    case preprocess
    /// The Core ML call.
    case model
    /// The mask back to the frame and the feathered alpha.
    case postprocess
    /// Core Image blur / replacement and the blend.
    case composite
}

/// The median time of each stage and the frame rate over the last `window` frames.
public struct LatencyMeter {
    public let window: Int
    private var samples: [Stage: [Double]] = [:]
    private var frameTimes: [Double] = []

    public init(window: Int = 60) {
        self.window = max(1, window)
    }

    /// Records one frame: its stage times in milliseconds, and when it finished (seconds, monotonic).
    public mutating func record(_ stages: [Stage: Double], finishedAt seconds: Double) {
        for (stage, ms) in stages {
            samples[stage, default: []].append(ms)
            if samples[stage]!.count > window { samples[stage]!.removeFirst(samples[stage]!.count - window) }
        }
        frameTimes.append(seconds)
        if frameTimes.count > window + 1 { frameTimes.removeFirst(frameTimes.count - window - 1) }
    }

    /// The median of a stage's recent times (numpy's median), nil before its first sample.
    public func median(_ stage: Stage) -> Double? {
        guard let s = samples[stage], !s.isEmpty else { return nil }
        return LatencySummary.percentile(s.sorted(), 50)
    }

    /// Frames per second over the recent frames (nil before two frames).
    public var fps: Double? {
        guard frameTimes.count >= 2, let first = frameTimes.first, let last = frameTimes.last, last > first else { return nil }
        return Double(frameTimes.count - 1) / (last - first)
    }

    /// One line for the screen, e.g. `28.7 fps | yuv 1.2 | pre 3.4 | model 9.8 | post 1.1 | comp 2.0 ms`.
    public var summary: String {
        let names: [Stage: String] = [.yuv: "yuv", .preprocess: "pre", .model: "model", .postprocess: "post", .composite: "comp"]
        var parts = [fps.map { String(format: "%.1f fps", $0) } ?? "- fps"]
        for s in Stage.allCases { parts.append("\(names[s]!) " + (median(s).map { String(format: "%.1f", $0) } ?? "-")) }
        return parts.joined(separator: " | ") + " ms"
    }
}
