// The camera side by hand: 420v range expansion against frames.py (the anchors of
// docs/frames.md and its whole lookup tables), the pixel-format codes, the packed layouts' size
// and stride rules (rejected exactly where frames.py rejects), bucket selection and placement on
// docs/buckets.md's worked examples, and the resize's invariants.
import BackdropKit
import Foundation
import XCTest

final class FramesTests: XCTestCase {
    /// frames.py `_VIDEO_Y_LUT` and `_VIDEO_C_LUT`, printed by Python (`.tolist()`).
    static let pythonY: [UInt8] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23,
        24, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36, 37, 38, 40, 41, 42, 43, 44, 45, 47, 48, 49, 50, 51, 52, 54, 55, 56, 57, 58,
        59, 61, 62, 63, 64, 65, 66, 68, 69, 70, 71, 72, 73, 75, 76, 77, 78, 79, 80, 82, 83, 84, 85, 86, 87, 88, 90, 91, 92, 93,
        94, 95, 97, 98, 99, 100, 101, 102, 104, 105, 106, 107, 108, 109, 111, 112, 113, 114, 115, 116, 118, 119, 120, 121, 122,
        123, 125, 126, 127, 128, 129, 130, 132, 133, 134, 135, 136, 137, 139, 140, 141, 142, 143, 144, 146, 147, 148, 149, 150,
        151, 153, 154, 155, 156, 157, 158, 160, 161, 162, 163, 164, 165, 167, 168, 169, 170, 171, 172, 173, 175, 176, 177, 178,
        179, 180, 182, 183, 184, 185, 186, 187, 189, 190, 191, 192, 193, 194, 196, 197, 198, 199, 200, 201, 203, 204, 205, 206,
        207, 208, 210, 211, 212, 213, 214, 215, 217, 218, 219, 220, 221, 222, 224, 225, 226, 227, 228, 229, 231, 232, 233, 234,
        235, 236, 238, 239, 240, 241, 242, 243, 245, 246, 247, 248, 249, 250, 252, 253, 254, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    ]
    static let pythonC: [UInt8] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23,
        24, 26, 27, 28, 29, 30, 31, 32, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57,
        59, 60, 61, 62, 63, 64, 65, 67, 68, 69, 70, 71, 72, 73, 74, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90, 92,
        93, 94, 95, 96, 97, 98, 100, 101, 102, 103, 104, 105, 106, 108, 109, 110, 111, 112, 113, 114, 115, 117, 118, 119, 120,
        121, 122, 123, 125, 126, 127, 128, 129, 130, 131, 133, 134, 135, 136, 137, 138, 139, 141, 142, 143, 144, 145, 146, 147,
        148, 150, 151, 152, 153, 154, 155, 156, 158, 159, 160, 161, 162, 163, 164, 166, 167, 168, 169, 170, 171, 172, 174, 175,
        176, 177, 178, 179, 180, 182, 183, 184, 185, 186, 187, 188, 189, 191, 192, 193, 194, 195, 196, 197, 199, 200, 201, 202,
        203, 204, 205, 207, 208, 209, 210, 211, 212, 213, 215, 216, 217, 218, 219, 220, 221, 222, 224, 225, 226, 227, 228, 229,
        230, 232, 233, 234, 235, 236, 237, 238, 240, 241, 242, 243, 244, 245, 246, 248, 249, 250, 251, 252, 253, 254, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    ]

    /// numpy's `astype(np.float16)` of v / 255 for every byte value v, printed by Python.
    static let numpyHalves: [UInt16] = [
        0x0000, 0x1c04, 0x2004, 0x2206, 0x2404, 0x2505, 0x2606, 0x2707, 0x2804, 0x2885, 0x2905, 0x2986,
        0x2a06, 0x2a87, 0x2b07, 0x2b88, 0x2c04, 0x2c44, 0x2c85, 0x2cc5, 0x2d05, 0x2d45, 0x2d86, 0x2dc6,
        0x2e06, 0x2e46, 0x2e87, 0x2ec7, 0x2f07, 0x2f47, 0x2f88, 0x2fc8, 0x3004, 0x3024, 0x3044, 0x3064,
        0x3085, 0x30a5, 0x30c5, 0x30e5, 0x3105, 0x3125, 0x3145, 0x3165, 0x3186, 0x31a6, 0x31c6, 0x31e6,
        0x3206, 0x3226, 0x3246, 0x3266, 0x3287, 0x32a7, 0x32c7, 0x32e7, 0x3307, 0x3327, 0x3347, 0x3367,
        0x3388, 0x33a8, 0x33c8, 0x33e8, 0x3404, 0x3414, 0x3424, 0x3434, 0x3444, 0x3454, 0x3464, 0x3474,
        0x3485, 0x3495, 0x34a5, 0x34b5, 0x34c5, 0x34d5, 0x34e5, 0x34f5, 0x3505, 0x3515, 0x3525, 0x3535,
        0x3545, 0x3555, 0x3565, 0x3575, 0x3586, 0x3596, 0x35a6, 0x35b6, 0x35c6, 0x35d6, 0x35e6, 0x35f6,
        0x3606, 0x3616, 0x3626, 0x3636, 0x3646, 0x3656, 0x3666, 0x3676, 0x3687, 0x3697, 0x36a7, 0x36b7,
        0x36c7, 0x36d7, 0x36e7, 0x36f7, 0x3707, 0x3717, 0x3727, 0x3737, 0x3747, 0x3757, 0x3767, 0x3777,
        0x3788, 0x3798, 0x37a8, 0x37b8, 0x37c8, 0x37d8, 0x37e8, 0x37f8, 0x3804, 0x380c, 0x3814, 0x381c,
        0x3824, 0x382c, 0x3834, 0x383c, 0x3844, 0x384c, 0x3854, 0x385c, 0x3864, 0x386c, 0x3874, 0x387c,
        0x3885, 0x388d, 0x3895, 0x389d, 0x38a5, 0x38ad, 0x38b5, 0x38bd, 0x38c5, 0x38cd, 0x38d5, 0x38dd,
        0x38e5, 0x38ed, 0x38f5, 0x38fd, 0x3905, 0x390d, 0x3915, 0x391d, 0x3925, 0x392d, 0x3935, 0x393d,
        0x3945, 0x394d, 0x3955, 0x395d, 0x3965, 0x396d, 0x3975, 0x397d, 0x3986, 0x398e, 0x3996, 0x399e,
        0x39a6, 0x39ae, 0x39b6, 0x39be, 0x39c6, 0x39ce, 0x39d6, 0x39de, 0x39e6, 0x39ee, 0x39f6, 0x39fe,
        0x3a06, 0x3a0e, 0x3a16, 0x3a1e, 0x3a26, 0x3a2e, 0x3a36, 0x3a3e, 0x3a46, 0x3a4e, 0x3a56, 0x3a5e,
        0x3a66, 0x3a6e, 0x3a76, 0x3a7e, 0x3a87, 0x3a8f, 0x3a97, 0x3a9f, 0x3aa7, 0x3aaf, 0x3ab7, 0x3abf,
        0x3ac7, 0x3acf, 0x3ad7, 0x3adf, 0x3ae7, 0x3aef, 0x3af7, 0x3aff, 0x3b07, 0x3b0f, 0x3b17, 0x3b1f,
        0x3b27, 0x3b2f, 0x3b37, 0x3b3f, 0x3b47, 0x3b4f, 0x3b57, 0x3b5f, 0x3b67, 0x3b6f, 0x3b77, 0x3b7f,
        0x3b88, 0x3b90, 0x3b98, 0x3ba0, 0x3ba8, 0x3bb0, 0x3bb8, 0x3bc0, 0x3bc8, 0x3bd0, 0x3bd8, 0x3be0,
        0x3be8, 0x3bf0, 0x3bf8, 0x3c00,
    ]

    func testFloat16ConversionMatchesNumpy() {
        // float32 bits -> numpy float16 bits: ties go to even (1 + 2^-11 -> 1.0, 1 + 3 * 2^-11 -> 1 + 2^-9,
        // 2^-25 -> 0, 3 * 2^-25 -> 2^-23), overflow to infinity at 65520, -0 kept.
        let anchors: [(UInt32, UInt16)] = [(0x3b80_8081, 0x1c04), (0x3f00_0000, 0x3800), (0x3f80_1000, 0x3c00), (0x3f80_3000, 0x3c02),
                                           (0x477f_ef00, 0x7bff), (0x477f_f000, 0x7c00), (0x3300_0000, 0x0000), (0x33c0_0000, 0x0002),
                                           (0x3280_0000, 0x0000), (0x8000_0000, 0x8000), (0x3dcc_cccd, 0x2e66), (0x3e99_999a, 0x34cd),
                                           (0x3f33_3333, 0x399a), (0x3f80_0000, 0x3c00), (0x3f48_c8c9, 0x3a46)]
        let got = toFloat16(anchors.map { Float(bitPattern: $0.0) }).map(\.bitPattern)
        XCTAssertEqual(got, anchors.map(\.1))
        let units = (0..<256).map { Float($0) / 255 }
        XCTAssertEqual(toFloat16(units).map(\.bitPattern), FramesTests.numpyHalves)
        XCTAssertEqual(TensorValues.from(units, as: .float16), .float16(FramesTests.numpyHalves.map { Float16(bitPattern: $0) }))
        XCTAssertEqual(TensorValues.from([0.25], as: .float32), .float32([0.25]))
    }

    func testVideoRangeAnchorsOfTheSpec() {
        // docs/frames.md "Video (limited) range": Y 16 -> 0, 126 -> 128, 235 -> 255; C 128 -> 128,
        // 129 -> 129, 200 -> 210, 240 -> 255.5 -> 255, 16 -> 0.5 -> 1 (half up, not 0); outside clips.
        for (y, want) in [(16, 0), (126, 128), (235, 255), (0, 0), (255, 255)] {
            XCTAssertEqual(videoYLUT[y], UInt8(want), "Y \(y)")
        }
        for (c, want) in [(128, 128), (129, 129), (200, 210), (240, 255), (16, 1), (0, 0), (255, 255)] {
            XCTAssertEqual(videoCLUT[c], UInt8(want), "C \(c)")
        }
        XCTAssertEqual(videoYLUT, FramesTests.pythonY)
        XCTAssertEqual(videoCLUT, FramesTests.pythonC)
    }

    func test420vAnd420fFramesThroughBothPlanes() throws {
        // A 2x2 frame: Y 16, 126 / 235, 0 and one chroma pair Cb 16, Cr 240 (frames.py
        // nv12_to_yuv(..., color_range="video") gives [[0,1,255],[128,1,255]],[[255,1,255],[0,1,255]]).
        let y: [UInt8] = [16, 126, 7, 7, 235, 0, 7, 7]  // bytes-per-row 4, padding 7
        let cbcr: [UInt8] = [16, 240, 9]
        let frame = try YUV420Frame.nv12(yPlane: y, yBytesPerRow: 4, cbcrPlane: cbcr, cbcrBytesPerRow: 3, width: 2, height: 2)
        let video = try ColorRange(pixelFormat: 0x3432_3076)  // '420v'
        XCTAssertEqual(video, .video)
        XCTAssertEqual(frame.yuv444(range: video), [0, 1, 255, 128, 1, 255, 255, 1, 255, 0, 1, 255])
        XCTAssertEqual(frame.yuv444(range: try ColorRange(pixelFormat: 0x3432_3066)), [16, 16, 240, 126, 16, 240, 235, 16, 240, 0, 16, 240])
        XCTAssertThrowsError(try ColorRange(pixelFormat: 0x4247_5241)) { e in  // 'BGRA'
            XCTAssertTrue("\(e)".contains("'BGRA'") && "\(e)".contains("420f"), "\(e)")
        }
    }

    func testNearestChromaOnAnOddFrame() throws {
        // 3x3 NV12: chroma 2x2 samples; pixel (r, c) takes sample (r / 2, c / 2).
        let yPlane: [UInt8] = Array(0..<9)
        let chroma: [UInt8] = [10, 20, 11, 21, 12, 22, 13, 23]  // (U, V) for samples (0,0) (0,1) (1,0) (1,1)
        let f = try YUV420Frame.nv12(buffer: yPlane + chroma, width: 3, height: 3)
        let yuv = f.yuv444()
        let u = stride(from: 1, to: 27, by: 3).map { yuv[$0] }
        let v = stride(from: 2, to: 27, by: 3).map { yuv[$0] }
        XCTAssertEqual(u, [10, 10, 11, 10, 10, 11, 12, 12, 13])
        XCTAssertEqual(v, [20, 20, 21, 20, 20, 21, 22, 22, 23])
        let nv21 = try YUV420Frame.nv21(buffer: yPlane + chroma, width: 3, height: 3).yuv444()
        XCTAssertEqual(stride(from: 1, to: 27, by: 3).map { nv21[$0] }, v, "NV21 has V first")
        // I420: Y, then the U plane, then the V plane.
        let i420 = try YUV420Frame.i420(buffer: yPlane + [10, 11, 12, 13] + [20, 21, 22, 23], width: 3, height: 3).yuv444()
        XCTAssertEqual(i420, yuv)
    }

    func testPackedBuffersAreRejectedWhereTheReferenceRejectsThem() throws {
        // frames.py: exactly W*H + 2*CW*CH bytes packed; S*H + S*CH with a row stride S >= 2*ceil(W/2).
        XCTAssertThrowsError(try YUV420Frame.nv21(buffer: [UInt8](repeating: 0, count: 10), width: 4, height: 4)) { e in
            XCTAssertTrue("\(e)".contains("NV21 buffer for a 4x4 (width x height) frame with no row padding must be 24 bytes; got 10"),
                          "\(e)")
        }
        XCTAssertNoThrow(try YUV420Frame.nv12(buffer: [UInt8](repeating: 0, count: 17 * 9 + 2 * 9 * 5), width: 17, height: 9))
        XCTAssertThrowsError(try YUV420Frame.nv12(buffer: [UInt8](repeating: 0, count: 17 * 14), width: 17, height: 9, rowStride: 17)) { e in
            XCTAssertTrue("\(e)".contains("row stride 17 is too small"), "\(e)")
        }
        XCTAssertNoThrow(try YUV420Frame.nv12(buffer: [UInt8](repeating: 0, count: 18 * 14), width: 17, height: 9, rowStride: 18))
        XCTAssertThrowsError(try YUV420Frame.nv12(buffer: [UInt8](repeating: 0, count: 18 * 14 + 1), width: 17, height: 9, rowStride: 18))
        // I420 at row stride S: Y rows S >= W, U and V rows ceil(S/2) each.
        XCTAssertNoThrow(try YUV420Frame.i420(buffer: [UInt8](repeating: 0, count: 5 * 9 + 2 * 3 * 5), width: 5, height: 9, rowStride: 5))
        XCTAssertNoThrow(try YUV420Frame.i420(buffer: [UInt8](repeating: 0, count: 7 * 9 + 2 * 4 * 5), width: 5, height: 9, rowStride: 7))
        XCTAssertThrowsError(try YUV420Frame.i420(buffer: [UInt8](repeating: 0, count: 4 * 9 + 2 * 2 * 5), width: 5, height: 9, rowStride: 4))
        XCTAssertThrowsError(try YUV420Frame.i420(buffer: [UInt8](repeating: 0, count: 7 * 9 + 2 * 3 * 5), width: 5, height: 9, rowStride: 7))
        XCTAssertThrowsError(try YUV420Frame.nv12(buffer: [], width: 0, height: 3))
    }

    func testBucketSelectionOnTheWorkedExamples() throws {
        let set = [Bucket(name: "landscape_16x9", height: 160, width: 288), Bucket(name: "portrait_9x16", height: 288, width: 160),
                   Bucket(name: "landscape_4x3", height: 192, width: 256), Bucket(name: "portrait_3x4", height: 256, width: 192),
                   Bucket(name: "square_1x1", height: 224, width: 224)]
        let examples: [(Int, Int, String)] = [(1080, 1920, "landscape_16x9"), (1920, 1080, "portrait_9x16"),
                                              (480, 640, "landscape_4x3"), (144, 176, "landscape_4x3"), (175, 143, "portrait_3x4"),
                                              (720, 720, "square_1x1"), (1, 1, "square_1x1"), (100, 155, "landscape_16x9"),
                                              (100, 154, "landscape_4x3"), (10, 36, "landscape_16x9")]
        for (h, w, name) in examples {
            XCTAssertEqual(try selectBucket(set, height: h, width: w).name, name, "\(h)x\(w)")
        }
        XCTAssertThrowsError(try selectBucket(set, height: 1, width: 7))
        XCTAssertThrowsError(try selectBucket(set, height: 10, width: 37))
        // Ties go to the earlier bucket.
        let tie = [Bucket(name: "a", height: 100, width: 200), Bucket(name: "b", height: 200, width: 100)]
        XCTAssertEqual(try selectBucket(tie, height: 100, width: 100).name, "a")
        XCTAssertEqual(try selectBucket(Array(tie.reversed()), height: 100, width: 100).name, "b")
    }

    func testPlacementOnTheWorkedExamples() throws {
        // docs/buckets.md "Placement": frame, bucket -> scaled H x W, pads top/bottom/left/right.
        let table: [(Int, Int, Int, Int, [Int])] = [
            (1080, 1920, 160, 288, [160, 284, 0, 0, 2, 2]), (144, 176, 192, 256, [192, 235, 0, 0, 10, 11]),
            (175, 143, 256, 192, [235, 192, 10, 11, 0, 0]), (2, 3, 192, 256, [171, 256, 10, 11, 0, 0]),
            (480, 640, 192, 256, [192, 256, 0, 0, 0, 0]), (64, 113, 160, 288, [160, 283, 0, 0, 2, 3]),
        ]
        for (h, w, hb, wb, want) in table {
            XCTAssertEqual(try plan(srcHeight: h, srcWidth: w, bucketHeight: hb, bucketWidth: wb).fields, want, "\(h)x\(w) in \(hb)x\(wb)")
        }
        XCTAssertThrowsError(try plan(srcHeight: 65537, srcWidth: 1, bucketHeight: 160, bucketWidth: 288))
        XCTAssertThrowsError(try plan(srcHeight: 10, srcWidth: 10, bucketHeight: 4097, bucketWidth: 288))
    }

    func testResizeInvariants() throws {
        // A constant image stays exactly constant; an image of its own size comes back unchanged.
        let constant = [Float](repeating: 0.3, count: 7 * 5 * 3)
        XCTAssertEqual(try resizeBilinear(constant, inH: 7, inW: 5, channels: 3, outH: 13, outW: 2), [Float](repeating: 0.3, count: 13 * 2 * 3))
        let ramp = (0..<35).map { Float($0) / 7 }
        XCTAssertEqual(try resizeBilinear(ramp, inH: 7, inW: 5, channels: 1, outH: 7, outW: 5), ramp)
        // 2 -> 4 samples: source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
        XCTAssertEqual(try resizeBilinear([0, 1], inH: 1, inW: 2, channels: 1, outH: 1, outW: 4), [0, 0.25, 0.75, 1])
        XCTAssertThrowsError(try resizeBilinear([0, 1, 2], inH: 1, inW: 2, channels: 1, outH: 1, outW: 4))
    }
}
