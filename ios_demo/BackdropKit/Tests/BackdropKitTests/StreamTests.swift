// The manifest, the state carried per state form, the resets, and the mask's last step, on the
// export of BACKDROP_GOLDEN_DIST (default dist/ios-arm64): a SegmentationStream fed each
// golden's camera buffers must hand the model the golden's inputs and states (in the artifact's
// dtype: float32 for ExecuTorch, float16 for Core ML), reset exactly where the golden does, and
// map the golden's outputs back to its camera masks (android_demo/core's StreamTest.kt twin).
import BackdropKit
import Foundation
import XCTest

final class StreamTests: XCTestCase {
    func testTheManifestDescribesTheExport() throws {
        let m = try loadManifest()
        XCTAssertEqual(Int(m.schemaVersion.split(separator: ".")[0]), knownSchemaMajor)
        XCTAssertEqual(m.target.platform, "ios")
        XCTAssertEqual(m.camera.format, "nv12")
        XCTAssertFalse(m.artifacts.isEmpty)
        for b in m.buckets {
            let g = try golden(bucket: b.name, in: m)
            XCTAssertEqual(g.bucket, b.name, "the golden of \(b.name)")
            XCTAssertEqual(try m.selectBucket(height: g.height, width: g.width), b, "a golden frame's bucket")
            for a in m.artifacts(for: b.name) {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dist.appendingPathComponent(a.path).path), a.key)
                XCTAssertEqual(a.frameInput.shape, [1, 3, b.height, b.width], a.key)
                XCTAssertEqual(a.frameInput.dtype, a.format == "coreml" ? "float16" : "float32", a.key)
            }
            let coreml = m.artifacts(for: b.name).filter { $0.format == "coreml" }
            XCTAssertEqual(Set(coreml.map(\.stateForm)), [.native, .explicit], "\(b.name): both Core ML state forms")
            for a in coreml where a.stateForm == .native {
                XCTAssertEqual(a.minOS, "iOS18", a.key)
                XCTAssertEqual(a.states.map(\.name), ["mask_state"], a.key)
                XCTAssertEqual(a.stateInput?.name, "reset", a.key)
            }
        }
        print("StreamTests: manifest \(m.schemaVersion), \(m.buckets.count) buckets, \(m.artifacts.count) artifacts")
    }

    func testAnUnknownSchemaMajorIsRefusedAndANewerMinorRead() throws {
        let text = try String(contentsOf: try requireDist().appendingPathComponent("manifest.json"), encoding: .utf8)
        func replacingVersion(_ v: String) -> String {
            text.replacingOccurrences(of: #""schema_version":\s*"[0-9]+\.[0-9]+""#, with: "\"schema_version\": \"\(v)\"",
                                      options: .regularExpression)
        }
        XCTAssertThrowsError(try Manifest.parse(replacingVersion("2.0"))) { e in
            XCTAssertTrue("\(e)".contains("MAJOR 2") && "\(e)".contains("MAJOR 1"), "\(e)")
        }
        XCTAssertThrowsError(try Manifest.parse(#"{"schema_version": "2.0"}"#)) { e in
            XCTAssertTrue("\(e)".contains("MAJOR 2"), "the MAJOR is checked before anything else: \(e)")
        }
        XCTAssertEqual(try Manifest.parse(replacingVersion("1.99")).schemaVersion, "1.99")
        let withExtra = text.replacingOccurrences(of: "\"threshold\":", with: "\"a_future_field\": {\"x\": [1]}, \"threshold\":")
        XCTAssertNoThrow(try Manifest.parse(withExtra), "a newer MINOR's new fields are ignored")
        for bad in ["[]", "{", #"{"schema_version": "1.2"}"#, #"{"schema_version": 1.2}"#, "{\"schema_version\": \"one\"}",
                    text.replacingOccurrences(of: "\"threshold\":", with: "\"threshold_\":"),
                    text.replacingOccurrences(of: "\"threshold\": 0.5", with: "\"threshold\": 1.5")] {
            XCTAssertThrowsError(try Manifest.parse(bad), String(bad.prefix(40))) { e in
                XCTAssertTrue(e is ManifestError, "\(e)")
                XCTAssertFalse("\(e)".isEmpty)
            }
        }
        XCTAssertThrowsError(try Manifest.parse(text.replacingOccurrences(of: "\"threshold\":", with: "\"threshold_\":"))) { e in
            XCTAssertTrue("\(e)".contains("\"threshold\""), "the message names the missing field: \(e)")
        }
    }

    /// Each golden through a stream on every (state form, input dtype) its bucket was exported with.
    func testGoldensThroughAStreamCarryAndResetTheState() throws {
        let m = try loadManifest()
        var frames = 0
        var kinds = Set<String>()
        for b in m.buckets {
            let g = try golden(bucket: b.name, in: m)
            var seen = Set<String>()
            for artifact in m.artifacts(for: b.name) {
                let kind = "\(artifact.stateForm.rawValue)-\(artifact.frameInput.dtype)"
                if !seen.insert(kind).inserted { continue }
                kinds.insert(kind)
                let stream = SegmentationStream(manifest: m) { _ in artifact }
                let dtype = try artifact.frameInput.elementType(of: artifact.key)
                let hw = b.height * b.width
                for n in 0..<g.count {
                    if g.resets[n] && n > 0 { stream.sceneCut() }
                    let feed = try stream.prepare(try g.frame(n), range: .full)
                    let at = "\(artifact.key) frame \(n)"
                    XCTAssertEqual(feed.reset, g.resets[n], "\(at): reset")
                    let want = try g.frames.row(n).floats()
                    switch feed.input {
                    case let .float32(v):
                        XCTAssertEqual(dtype, .float32, at)
                        assertBitEqual(v, want, "\(at): model input")
                    case let .float16(v):
                        XCTAssertEqual(dtype, .float16, at)
                        assertBitEqual(v, toFloat16(want), "\(at): float16 model input")
                    }
                    let out = try g.masks.row(n).floats()
                    let next = TensorValues.from(out, as: dtype)  // what the model hands back as next_mask
                    switch artifact.stateForm {
                    case .explicit:
                        let prev = g.resets[n] ? [Float](repeating: 0, count: hw) : try g.masks.row(n - 1).floats()
                        XCTAssertEqual(feed.prevMask, TensorValues.from(prev, as: dtype), "\(at): prev_mask")
                        XCTAssertNil(feed.resetInput)
                    case .native:
                        XCTAssertNil(feed.prevMask)
                        XCTAssertEqual(feed.resetFlag, g.resets[n] ? 1 : 0, "\(at): reset flag")
                        XCTAssertEqual(feed.resetInput, TensorValues.from([g.resets[n] ? 1 : 0], as: dtype), at)
                    }
                    let camera = try stream.complete(feed, mask: .float32(out), nextMask: next)
                    assertBitEqual(camera, try g.cameraMasks.row(n).floats(), "\(at): camera mask")
                    frames += 1
                }
            }
        }
        XCTAssertTrue(kinds.isSuperset(of: ["explicit-float16", "native-float16"]), "Core ML forms run: \(kinds)")
        XCTAssertGreaterThan(frames, 0, "no artifacts to run")
        print("StreamTests: \(frames) golden frames through streams (\(kinds.sorted().joined(separator: ", "))), "
                + "state and resets as the goldens")
    }

    func testACameraSwitchOrABucketChangeResets() throws {
        let m = try loadManifest()
        let first = try golden(bucket: m.buckets[0].name, in: m)
        let stream = SegmentationStream(manifest: m) { bucket in
            try m.artifact(bucket: bucket.name, format: "coreml", precision: "fp16", stateForm: .explicit)
        }
        @discardableResult
        func step(_ g: Golden, _ n: Int) throws -> ModelFeed {
            let feed = try stream.prepare(try g.frame(n))
            let out = try g.masks.row(n).floats()
            _ = try stream.complete(feed, mask: .float32(out), nextMask: .float16(toFloat16(out)))
            return feed
        }
        XCTAssertTrue(try step(first, 1).reset, "the first frame")
        XCTAssertFalse(try step(first, 2).reset)
        stream.cameraSwitched()
        let switched = try step(first, 3)
        XCTAssertTrue(switched.reset, "after cameraSwitched()")
        XCTAssertEqual(switched.prevMask, .zeros(.float16, count: first.bucketHeight * first.bucketWidth))
        let carried = try step(first, 4)
        XCTAssertFalse(carried.reset)
        XCTAssertEqual(carried.prevMask, .float16(toFloat16(try first.masks.row(3).floats())), "the carried next_mask")
        stream.reset()
        XCTAssertTrue(try step(first, 5).reset, "after reset()")
        if m.buckets.count > 1 {
            let other = try golden(bucket: m.buckets[1].name, in: m)
            XCTAssertTrue(try step(other, 0).reset, "into another bucket")
            XCTAssertFalse(try step(other, 1).reset)
            XCTAssertTrue(try step(first, 6).reset, "back again")
        }
        // A wrong-size or wrong-dtype output is refused, not fed back.
        let feed = try stream.prepare(try first.frame(7))
        XCTAssertThrowsError(try stream.complete(feed, mask: .float32([0, 0, 0]), nextMask: .float32([0, 0, 0]))) { e in
            XCTAssertTrue("\(e)".contains("3 values"), "\(e)")
        }
        let out = try first.masks.row(7).floats()
        XCTAssertThrowsError(try stream.complete(feed, mask: .float32(out), nextMask: .float32(out))) { e in
            XCTAssertTrue("\(e)".contains("float16"), "\(e)")
        }
        XCTAssertThrowsError(try stream.complete(feed, mask: .float32(out), nextMask: nil)) { e in
            XCTAssertTrue("\(e)".contains("next_mask"), "\(e)")
        }
        _ = try stream.complete(feed, mask: .float32(out), nextMask: .float16(toFloat16(out)))
        XCTAssertFalse(try step(first, 8).reset, "the refused outputs did not reset the stream")
    }

    func testAFrameOutsideTheBucketsAspectRangeIsRefused() throws {
        let m = try loadManifest()
        let stream = SegmentationStream(manifest: m) { bucket in
            try m.artifact(bucket: bucket.name, format: "coreml", precision: "fp16", stateForm: .native)
        }
        let frame = try YUV420Frame.nv12(buffer: [UInt8](repeating: 128, count: 4 * 40 + 2 * 2 * 20), width: 40, height: 4)
        XCTAssertThrowsError(try stream.prepare(frame)) { e in
            XCTAssertTrue("\(e)".contains("more than 2x"), "\(e)")
        }
    }

    func testThresholdAndFeatherFollowTheReference() throws {
        // The same numbers as android_demo/core's StreamTest.thresholdAndFeatherFollowTheReference.
        let p: [Float] = [0.0, 0.3, 0.49999997, 0.5, 0.5000001, 0.7, 1.0, -0.25, 1.5]
        XCTAssertEqual(try binaryMask(p, threshold: 0.5), [0, 0, 0, 1, 1, 1, 1, 0, 1])
        let (lo, hi) = featherBand(threshold: 0.5)
        XCTAssertEqual(lo, 0.3)
        XCTAssertEqual(hi, 0.7)
        XCTAssertEqual(try featherAlpha(p, low: lo, high: hi), [0, 0, 127, 128, 128, 255, 255, 0, 255])
        XCTAssertEqual(try featherAlpha([.nan], low: lo, high: hi), [0])
        XCTAssertThrowsError(try featherAlpha(p, low: 0.5, high: 0.5))
        XCTAssertThrowsError(try binaryMask(p, threshold: 1.5))
    }
}
