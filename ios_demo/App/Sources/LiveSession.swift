// The live view: AVFoundation capture in 420f (kCVPixelFormatType_420YpCbCr8BiPlanarFullRange),
// each frame through BackdropKit (YUV444 from the two planes in place, the bucket, the model
// input in float16, the state) and Core ML, the mask back to the frame, the feathered alpha,
// the Core Image composite; FPS and the median time of each stage on screen.
import AVFoundation
import BackdropKit
import BackdropKitCoreML
import QuartzCore
import SwiftUI

final class LiveSession: NSObject, ObservableObject, AVCaptureVideoDataOutputSampleBufferDelegate {
    @Published var image: CGImage?
    @Published var stats = ""
    @Published var status = "starting"
    @Published var selfTest: [String] = []
    @Published var mode: Compositor.Mode = .blur
    @Published var precision = "fp16"
    @Published var precisions = ["fp16"]

    private let session = AVCaptureSession()
    private let queue = DispatchQueue(label: "ai.backdrop.demo.frames")
    private var bundle: AppBundle?
    private var stream: SegmentationStream?
    private var runners: [String: CoreMLRunner] = [:]
    private var meter = LatencyMeter(window: 60)
    private var rule = CameraChangeRule()
    private var position: AVCaptureDevice.Position = .front
    private let compositor = Compositor()
    // Read on the frame queue, set on the main one.
    private var currentMode: Compositor.Mode = .blur
    private var currentPrecision = "fp16"

    /// Loads the bundle, runs the self-test, then starts the camera.
    func start() {
        queue.async {
            do {
                let b = try AppBundle()
                self.bundle = b
                DispatchQueue.main.async { self.precisions = b.precisions }
                self.publish(status: "self-test on the bundled golden (\(b.stateForm.rawValue) state form)...")
                let results = b.selfTest()
                DispatchQueue.main.async { self.selfTest = results.map(\.message) }
                self.stream = SegmentationStream(manifest: b.manifest) { [weak self] bucket in
                    try b.artifact(bucket: bucket.name, precision: self?.currentPrecision ?? "fp16")
                }
                try self.configureCamera()
                self.session.startRunning()
                self.publish(status: results.allSatisfy(\.passed) ? "self-test passed" : "self-test FAILED (see above)")
            } catch {
                self.publish(status: "cannot start: \(error.localizedDescription)")
            }
        }
    }

    func setMode(_ m: Compositor.Mode) {
        mode = m
        queue.async { self.currentMode = m }
    }

    /// Another precision: another artifact, so the stream resets on the next frame.
    func setPrecision(_ p: String) {
        precision = p
        queue.async { self.currentPrecision = p }
    }

    func switchCamera() {
        queue.async {
            self.position = self.position == .front ? .back : .front
            do { try self.configureCamera() } catch { self.publish(status: "camera: \(error.localizedDescription)") }
        }
    }

    private func publish(status: String) { DispatchQueue.main.async { self.status = status } }

    private func configureCamera() throws {
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        session.sessionPreset = .hd1280x720
        for input in session.inputs { session.removeInput(input) }
        for output in session.outputs { session.removeOutput(output) }
        guard let device = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: position) else {
            throw BenchError("no \(position == .front ? "front" : "back") camera")
        }
        let input = try AVCaptureDeviceInput(device: device)
        guard session.canAddInput(input) else { throw BenchError("the capture session takes no camera input") }
        session.addInput(input)
        let output = AVCaptureVideoDataOutput()
        // 420f: full range, which BackdropKit reads as is (420v would work too: ColorRange(pixelFormat:)).
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_420YpCbCr8BiPlanarFullRange]
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: queue)
        guard session.canAddOutput(output) else { throw BenchError("the capture session takes no video data output") }
        session.addOutput(output)
        if let c = output.connection(with: .video) {
            if #available(iOS 17.0, *) {
                if c.isVideoRotationAngleSupported(90) { c.videoRotationAngle = 90 }  // portrait buffers: the 9:16 bucket
            } else if c.isVideoOrientationSupported {
                c.videoOrientation = .portrait
            }
            if c.isVideoMirroringSupported { c.isVideoMirrored = position == .front }
        }
    }

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let pixelBuffer = CMSampleBufferGetImageBuffer(sampleBuffer), let bundle, let stream else { return }
        do {
            let t0 = CACurrentMediaTime()
            let camera = position == .front ? "front" : "back"
            if rule.changed(camera: camera, width: CVPixelBufferGetWidth(pixelBuffer), height: CVPixelBufferGetHeight(pixelBuffer),
                            pixelFormat: CVPixelBufferGetPixelFormatType(pixelBuffer)) {
                stream.cameraSwitched()
            }
            let frame = try PixelBufferFrames.yuv444(pixelBuffer)
            let t1 = CACurrentMediaTime()
            let feed = try stream.prepare(yuv444: frame.yuv, width: frame.width, height: frame.height)
            let t2 = CACurrentMediaTime()
            let runner = try runners[feed.artifact.key] ?? bundle.runner(for: feed.artifact)
            runners[feed.artifact.key] = runner
            let out = try runner.run(feed)
            let t3 = CACurrentMediaTime()
            let probability = try stream.complete(feed, mask: out.mask, nextMask: out.nextMask)
            let band = featherBand(threshold: bundle.manifest.threshold)
            let alpha = try featherAlpha(probability, low: band.low, high: band.high)
            let t4 = CACurrentMediaTime()
            let picture = compositor.composite(pixelBuffer, alpha: alpha, width: frame.width, height: frame.height, mode: currentMode)
            let t5 = CACurrentMediaTime()
            meter.record([.yuv: (t1 - t0) * 1e3, .preprocess: (t2 - t1) * 1e3, .model: (t3 - t2) * 1e3,
                          .postprocess: (t4 - t3) * 1e3, .composite: (t5 - t4) * 1e3], finishedAt: t5)
            let line = "\(feed.artifact.key)  \(feed.bucket)\n" + meter.summary
            DispatchQueue.main.async {
                self.image = picture
                self.stats = line
            }
        } catch {
            stream.reset()
            publish(status: "frame failed: \(error.localizedDescription)")
        }
    }
}
