// The live view's reset rule and latency meter (the numbers on the app's screen).
import BackdropKit
import XCTest

final class LiveViewTests: XCTestCase {
    func testACameraSizeOrFormatChangeResetsTheStream() {
        var rule = CameraChangeRule()
        XCTAssertFalse(rule.changed(camera: "front", width: 1920, height: 1080, pixelFormat: ColorRange.pixelFormat420f))
        XCTAssertFalse(rule.changed(camera: "front", width: 1920, height: 1080, pixelFormat: ColorRange.pixelFormat420f))
        XCTAssertTrue(rule.changed(camera: "back", width: 1920, height: 1080, pixelFormat: ColorRange.pixelFormat420f))
        XCTAssertTrue(rule.changed(camera: "back", width: 1080, height: 1920, pixelFormat: ColorRange.pixelFormat420f))
        XCTAssertTrue(rule.changed(camera: "back", width: 1080, height: 1920, pixelFormat: ColorRange.pixelFormat420v))
        XCTAssertFalse(rule.changed(camera: "back", width: 1080, height: 1920, pixelFormat: ColorRange.pixelFormat420v))
    }

    func testTheMeterKeepsTheLastWindow() {
        var m = LatencyMeter(window: 3)
        XCTAssertNil(m.fps)
        XCTAssertNil(m.median(.model))
        for (i, ms) in [100.0, 1, 2, 3].enumerated() { m.record([.model: ms, .yuv: 0.5], finishedAt: Double(i) * 0.04) }
        XCTAssertEqual(m.median(.model), 2, "the 100 ms frame left the window")
        XCTAssertEqual(m.fps!, 25, accuracy: 1e-9)
        XCTAssertTrue(m.summary.hasPrefix("25.0 fps | yuv 0.5 | pre - | model 2.0"), m.summary)
    }
}
