// Every golden of the export reproduced by BackdropKit: each NV12 camera buffer turned into the
// model input bit for bit (float32 compared by bit pattern), each stored reference probability
// mapped back to the frame bit for bit, and the buffer re-laid as a CVPixelBuffer's two planes
// (each with its own bytes-per-row) decoding to the same frame. The export is
// BACKDROP_GOLDEN_DIST (default dist/ios-arm64); a missing folder fails, it is not skipped.
import BackdropKit
import Foundation
import XCTest

final class GoldenTests: XCTestCase {
    func testCameraBuffersBecomeTheGoldenModelInputs() throws {
        var frames = 0
        for url in try goldenFiles() {
            let g = try golden(url)
            XCTAssertEqual(g.format, "nv12", "\(url.path): an iOS export's goldens are NV12 camera buffers")
            let p = try plan(srcHeight: g.height, srcWidth: g.width, bucketHeight: g.bucketHeight, bucketWidth: g.bucketWidth)
            for n in 0..<g.count {
                let got = try modelInput(yuv444: try g.frame(n).yuv444(range: .full), placement: p)
                assertBitEqual(got, try g.frames.row(n).floats(), "\(url.lastPathComponent) frame \(n): model input")
                frames += 1
            }
        }
        XCTAssertGreaterThan(frames, 0)
        print("GoldenTests: \(frames) camera buffers reproduced bit for bit")
    }

    func testReferenceMasksMapBackToTheGoldenCameraMasks() throws {
        var frames = 0
        for url in try goldenFiles() {
            let g = try golden(url)
            let p = try plan(srcHeight: g.height, srcWidth: g.width, bucketHeight: g.bucketHeight, bucketWidth: g.bucketWidth)
            for n in 0..<g.count {
                let got = try fromBucket(try g.masks.row(n).floats(), placement: p)
                assertBitEqual(got, try g.cameraMasks.row(n).floats(), "\(url.lastPathComponent) frame \(n): camera mask")
                frames += 1
            }
        }
        XCTAssertGreaterThan(frames, 0)
        print("GoldenTests: \(frames) reference masks mapped back bit for bit")
    }

    /// A packed NV12 buffer re-laid as a bi-planar CVPixelBuffer holds it: a Y plane and an
    /// interleaved CbCr plane, each row padded with `pad` bytes of 0x55; `trimLast` drops the
    /// last row's padding (a plane's bytes end right after its last sample).
    private func twoPlanes(_ buffer: [UInt8], width w: Int, height h: Int, yPad: Int, cPad: Int, trimLast: Bool)
        -> (y: [UInt8], yStride: Int, cbcr: [UInt8], cStride: Int) {
        let cw = (w + 1) / 2, ch = (h + 1) / 2
        let yStride = w + yPad, cStride = 2 * cw + cPad
        var y = [UInt8](repeating: 0x55, count: yStride * h - (trimLast ? yPad : 0))
        var c = [UInt8](repeating: 0x55, count: cStride * ch - (trimLast ? cPad : 0))
        for r in 0..<h { y.replaceSubrange(r * yStride..<r * yStride + w, with: buffer[r * w..<(r + 1) * w]) }
        for r in 0..<ch {
            let from = w * h + r * 2 * cw
            c.replaceSubrange(r * cStride..<r * cStride + 2 * cw, with: buffer[from..<from + 2 * cw])
        }
        return (y, yStride, c, cStride)
    }

    func testTwoPlanesWithTheirOwnBytesPerRowGiveTheSameFrame() throws {
        var checked = 0
        for url in try goldenFiles() {
            let g = try golden(url)
            for n in [0, g.count - 1] {
                let buffer = try g.buffer(n)
                let want = try g.frame(n).yuv444(range: .full)
                for (yPad, cPad) in [(0, 0), (3, 3), (64, 64), (0, 64), (3, 0)] {
                    for trimLast in [false, true] {
                        let planes = twoPlanes(buffer, width: g.width, height: g.height, yPad: yPad, cPad: cPad, trimLast: trimLast)
                        let what = "\(url.lastPathComponent) frame \(n), rows padded by \(yPad) (Y) and \(cPad) (CbCr) bytes"
                            + (trimLast ? ", last row unpadded" : "")
                        let frame = try YUV420Frame.nv12(yPlane: planes.y, yBytesPerRow: planes.yStride, cbcrPlane: planes.cbcr,
                                                         cbcrBytesPerRow: planes.cStride, width: g.width, height: g.height)
                        XCTAssertEqual(frame.yuv444(range: .full), want, what)
                        // The same planes read in place, as from a locked CVPixelBuffer's base addresses.
                        let direct = try planes.y.withUnsafeBytes { y in
                            try planes.cbcr.withUnsafeBytes { c in
                                try YUV420Frame.yuv444(yPlane: y, yBytesPerRow: planes.yStride, cbcrPlane: c,
                                                       cbcrBytesPerRow: planes.cStride, width: g.width, height: g.height, range: .full)
                            }
                        }
                        XCTAssertEqual(direct, want, what + " (in place)")
                        checked += 1
                    }
                }
                // A packed buffer with a row stride (every row, both planes, S bytes) too.
                let s = g.width + 64
                let planes = twoPlanes(buffer, width: g.width, height: g.height, yPad: 64, cPad: s - 2 * ((g.width + 1) / 2),
                                       trimLast: false)
                let strided = try YUV420Frame.nv12(buffer: planes.y + planes.cbcr, width: g.width, height: g.height, rowStride: s)
                XCTAssertEqual(strided.yuv444(range: .full), want, "\(url.lastPathComponent) frame \(n), row stride \(s)")
            }
        }
        print("GoldenTests: \(checked) two-plane layouts decoded to the packed buffer's frame")
    }

    func testAPlaneTooSmallForItsBytesPerRowIsRefused() throws {
        let g = try golden(try goldenFiles()[0])
        let planes = twoPlanes(try g.buffer(0), width: g.width, height: g.height, yPad: 3, cPad: 3, trimLast: true)
        XCTAssertThrowsError(try YUV420Frame.nv12(yPlane: Array(planes.y.dropLast()), yBytesPerRow: planes.yStride,
                                                  cbcrPlane: planes.cbcr, cbcrBytesPerRow: planes.cStride,
                                                  width: g.width, height: g.height)) { e in
            XCTAssertTrue("\(e)".contains("Y plane of"), "\(e)")
        }
        XCTAssertThrowsError(try YUV420Frame.nv12(yPlane: planes.y, yBytesPerRow: planes.yStride, cbcrPlane: planes.cbcr,
                                                  cbcrBytesPerRow: g.width - 1, width: g.width, height: g.height)) { e in
            XCTAssertTrue("\(e)".contains("bytes-per-row"), "\(e)")
        }
    }

    /// Core ML artifacts take float16 frames: the golden input converted with Float16(x) (round
    /// to nearest, ties to even) is what the stream hands over, and widens back within half an ulp.
    func testFloat16InputsAreTheFloat32InputsRoundedToNearestEven() throws {
        let g = try golden(try goldenFiles()[0])
        let p = try plan(srcHeight: g.height, srcWidth: g.width, bucketHeight: g.bucketHeight, bucketWidth: g.bucketWidth)
        let x = try modelInput(yuv444: try g.frame(0).yuv444(range: .full), placement: p)
        let h = toFloat16(x)
        XCTAssertEqual(h.count, x.count)
        // Nearest: no float16 lies closer to the float32 value than the one it became.
        let far = zip(x, h).enumerated().first { _, pair in
            let (a, b) = pair
            let d = abs(Float(b) - a)
            return d > abs(Float(b.nextUp) - a) || d > abs(Float(b.nextDown) - a)
        }
        if let (i, (a, b)) = far { XCTFail("value \(i): \(a) became \(b), not the nearest float16") }
    }
}
