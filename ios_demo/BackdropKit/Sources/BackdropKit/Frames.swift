// Camera buffers to YUV444, bit for bit the Python reference backdrop/core/frames.py (the rules
// are docs/frames.md): uint8 (height, width, 3) Y, Cb, Cr at full resolution, full range (JFIF
// BT.601), nearest chroma upsampling (pixel (r, c) takes chroma sample (r / 2, c / 2)).
//
// iOS hands over a bi-planar `CVPixelBuffer`: plane 0 is Y, plane 1 interleaved Cb, Cr (NV12),
// each plane with its own bytes-per-row (`CVPixelBufferGetBytesPerRowOfPlane`), which need not
// be equal and need not cover the last row's padding. `kCVPixelFormatType_420YpCbCr8BiPlanarFullRange`
// (`420f`) is full range; `...VideoRange` (`420v`, Y 16..235, C 16..240) is expanded to full range
// with frames.py's lookup tables. `YUV420Frame.nv12(yPlane:...)` reads the two planes as they
// are (no copy into one buffer); `nv21`, `nv12(buffer:...)` and `i420` read the packed single
// buffers that `backdrop conformance` exchanges, with frames.py's size and stride rules.
import Foundation

/// The range of a camera buffer's samples (frames.py COLOR_RANGES).
public enum ColorRange: String, CaseIterable, Sendable {
    /// Y, Cb, Cr in 0..255 (JFIF; Android cameras, iOS `420f`).
    case full
    /// Y 16..235, C 16..240 (iOS `420v`), expanded to full range on input.
    case video

    /// `kCVPixelFormatType_420YpCbCr8BiPlanarFullRange`, the four-character code `420f`.
    public static let pixelFormat420f: UInt32 = 0x3432_3066
    /// `kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange`, the four-character code `420v`.
    public static let pixelFormat420v: UInt32 = 0x3432_3076

    /// The range of a bi-planar 4:2:0 pixel format (`CVPixelBufferGetPixelFormatType`).
    /// - Throws: `PreprocessError` for any format other than `420f` and `420v`.
    public init(pixelFormat: UInt32) throws {
        switch pixelFormat {
        case ColorRange.pixelFormat420f: self = .full
        case ColorRange.pixelFormat420v: self = .video
        default:
            throw PreprocessError(
                "pixel format \(fourCharCode(pixelFormat)) is not 420f or 420v (bi-planar 4:2:0); set the capture "
                    + "output's videoSettings kCVPixelBufferPixelFormatTypeKey to kCVPixelFormatType_420YpCbCr8BiPlanarFullRange")
        }
    }
}

/// A four-character code as text (`420f`), or its hex value when it is not printable.
func fourCharCode(_ code: UInt32) -> String {
    let bytes = [UInt8(code >> 24 & 0xff), UInt8(code >> 16 & 0xff), UInt8(code >> 8 & 0xff), UInt8(code & 0xff)]
    if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return "'" + String(decoding: bytes, as: UTF8.self) + "'" }
    return String(format: "0x%08x", code)
}

/// buckets.py MAX_FRAME_SIDE: the largest frame side accepted.
public let maxFrameSide = 65536
/// buckets.py MAX_BUCKET_SIDE: the largest bucket side accepted.
public let maxBucketSide = 4096

func checkFrameSide(_ label: String, _ v: Int) throws {
    if v < 1 || v > maxFrameSide {
        throw PreprocessError("frame \(label) \(v) is not between 1 and \(maxFrameSide)")
    }
}

/// floor(num / den) for den > 0 and any sign of num.
@inline(__always) func floorDiv(_ num: Int, _ den: Int) -> Int {
    let q = num / den
    return (num % den != 0 && num < 0) ? q - 1 : q
}

/// floor(num / den + 1/2), frames.py `_round_half_up_div`.
@inline(__always) func roundHalfUpDiv(_ num: Int, _ den: Int) -> Int { floorDiv(2 * num + den, 2 * den) }

private func clampU8(_ v: Int) -> UInt8 { UInt8(min(max(v, 0), 255)) }

/// frames.py `_VIDEO_Y_LUT`: Y' = clamp(round_half_up((Y - 16) * 255 / 219), 0, 255).
public let videoYLUT: [UInt8] = (0..<256).map { clampU8(roundHalfUpDiv(($0 - 16) * 255, 219)) }
/// frames.py `_VIDEO_C_LUT`: C' = clamp(round_half_up((C - 128) * 255 / 224 + 128), 0, 255).
public let videoCLUT: [UInt8] = (0..<256).map { clampU8(roundHalfUpDiv(($0 - 128) * 255 + 128 * 224, 224)) }

/// One plane of a 4:2:0 image: sample (row, col) is `bytes[offset + row * rowStride + col * pixelStride]`.
public struct Plane: Sendable {
    public let bytes: [UInt8]
    public let rowStride: Int
    public let pixelStride: Int
    public let offset: Int

    public init(bytes: [UInt8], rowStride: Int, pixelStride: Int = 1, offset: Int = 0) {
        self.bytes = bytes
        self.rowStride = rowStride
        self.pixelStride = pixelStride
        self.offset = offset
    }
}

/// A 4:2:0 camera frame of `width` x `height` pixels: a full-resolution Y plane and ceil-half
/// Cb (U) and Cr (V) planes, each read at its own row and pixel stride.
public struct YUV420Frame: Sendable {
    public let width: Int
    public let height: Int
    public let y: Plane
    public let u: Plane
    public let v: Plane

    /// Checks that every sample of every plane lies inside its bytes.
    /// - Throws: `PreprocessError` naming the plane that is too small or a stride that is not positive.
    public init(width: Int, height: Int, y: Plane, u: Plane, v: Plane) throws {
        try checkFrameSide("width", width)
        try checkFrameSide("height", height)
        let cw = (width + 1) / 2
        let ch = (height + 1) / 2
        try YUV420Frame.checkPlane("Y", y, cols: width, rows: height)
        try YUV420Frame.checkPlane("Cb (U)", u, cols: cw, rows: ch)
        try YUV420Frame.checkPlane("Cr (V)", v, cols: cw, rows: ch)
        self.width = width
        self.height = height
        self.y = y
        self.u = u
        self.v = v
    }

    /// The two planes of a bi-planar `420f` / `420v` `CVPixelBuffer` (plane 0: Y, plane 1:
    /// interleaved Cb, Cr), each with its own bytes-per-row, copied out of the locked buffer.
    /// The last row of a plane may lack its padding. The pixel format's range is passed to
    /// `yuv444(range:)` (see `ColorRange(pixelFormat:)`).
    /// - Throws: `PreprocessError` when a plane is too small for the frame at its bytes-per-row.
    public static func nv12(yPlane: [UInt8], yBytesPerRow: Int, cbcrPlane: [UInt8], cbcrBytesPerRow: Int,
                            width: Int, height: Int) throws -> YUV420Frame {
        try checkBiPlanarStrides(yBytesPerRow: yBytesPerRow, cbcrBytesPerRow: cbcrBytesPerRow, width: width)
        return try YUV420Frame(width: width, height: height, y: Plane(bytes: yPlane, rowStride: yBytesPerRow),
                        u: Plane(bytes: cbcrPlane, rowStride: cbcrBytesPerRow, pixelStride: 2),
                        v: Plane(bytes: cbcrPlane, rowStride: cbcrBytesPerRow, pixelStride: 2, offset: 1))
    }

    /// A packed NV21 buffer (Y rows, then V, U pairs); `rowStride` nil or 0: packed rows, else
    /// the bytes per row of both planes (>= 2 * ceil(width / 2)), frames.py `nv21_to_yuv`.
    /// - Throws: `PreprocessError` exactly where frames.py raises `FrameError`: a buffer that is
    ///   not exactly the layout's size, or a stride below 2 * ceil(width / 2).
    public static func nv21(buffer: [UInt8], width: Int, height: Int, rowStride: Int? = nil) throws -> YUV420Frame {
        try semiPlanar(buffer, width, height, rowStride, "NV21", vFirst: true)
    }

    /// A packed NV12 buffer (Y rows, then U, V pairs), frames.py `nv12_to_yuv`; as `nv21`.
    public static func nv12(buffer: [UInt8], width: Int, height: Int, rowStride: Int? = nil) throws -> YUV420Frame {
        try semiPlanar(buffer, width, height, rowStride, "NV12", vFirst: false)
    }

    /// A planar I420 buffer (Y plane, U plane, V plane), frames.py `i420_to_yuv`. `rowStride`
    /// nil or 0: packed rows; else Y rows of `rowStride` bytes (>= width) and U and V rows of
    /// ceil(rowStride / 2) bytes.
    /// - Throws: `PreprocessError` for a wrong buffer size or a stride below the width.
    public static func i420(buffer: [UInt8], width: Int, height: Int, rowStride: Int? = nil) throws -> YUV420Frame {
        try checkFrameSide("width", width)
        try checkFrameSide("height", height)
        let stride = rowStride ?? 0
        if stride != 0 && stride < width {
            throw PreprocessError("row stride \(stride) is too small for an I420 frame of width \(width): each Y row needs at "
                                    + "least \(width) bytes. Pass the Y plane's bytes-per-row as reported by the camera API.")
        }
        let cw = (width + 1) / 2
        let ch = (height + 1) / 2
        let yStride = stride != 0 ? stride : width
        let cStride = stride != 0 ? (stride + 1) / 2 : cw
        let expected = yStride * height + 2 * cStride * ch
        if buffer.count != expected {
            let rows = stride != 0 ? "row stride \(stride)" : "no row padding"
            throw PreprocessError("I420 buffer for a \(width)x\(height) (width x height) frame with \(rows) must be "
                                    + "\(expected) bytes; got \(buffer.count). Check width/height/row stride.")
        }
        let uOffset = yStride * height
        return try YUV420Frame(width: width, height: height, y: Plane(bytes: buffer, rowStride: yStride),
                               u: Plane(bytes: buffer, rowStride: cStride, offset: uOffset),
                               v: Plane(bytes: buffer, rowStride: cStride, offset: uOffset + cStride * ch))
    }

    /// A bi-planar buffer's rows hold a whole row of samples: Y `width` bytes, CbCr 2 * ceil(width / 2).
    static func checkBiPlanarStrides(yBytesPerRow: Int, cbcrBytesPerRow: Int, width: Int) throws {
        if yBytesPerRow < width {
            throw PreprocessError("Y plane bytes-per-row \(yBytesPerRow) is below the width \(width); pass "
                                    + "CVPixelBufferGetBytesPerRowOfPlane(buffer, 0)")
        }
        if cbcrBytesPerRow < 2 * ((width + 1) / 2) {
            throw PreprocessError("CbCr plane bytes-per-row \(cbcrBytesPerRow) is below 2 * ceil(width / 2) = "
                                    + "\(2 * ((width + 1) / 2)) for width \(width); pass CVPixelBufferGetBytesPerRowOfPlane(buffer, 1)")
        }
    }

    /// Bytes of a packed NV21/NV12 buffer (`rowStride` nil or 0: packed rows).
    /// - Throws: `PreprocessError` for a bad size or a stride below 2 * ceil(width / 2).
    public static func semiPlanarSize(width: Int, height: Int, rowStride: Int?, layout: String = "NV12") throws -> Int {
        try checkFrameSide("width", width)
        try checkFrameSide("height", height)
        let cw = (width + 1) / 2
        let ch = (height + 1) / 2
        guard let s = rowStride, s != 0 else { return width * height + 2 * cw * ch }
        if s < 2 * cw {
            throw PreprocessError("row stride \(s) is too small for a \(layout) frame of width \(width): each row needs at least "
                                    + "\(2 * cw) bytes (Y rows \(width), chroma rows 2*ceil(width/2) = \(2 * cw)). Pass the "
                                    + "plane's bytes-per-row as reported by the camera API.")
        }
        return s * height + s * ch
    }

    private static func semiPlanar(_ buffer: [UInt8], _ width: Int, _ height: Int, _ rowStride: Int?, _ layout: String,
                                   vFirst: Bool) throws -> YUV420Frame {
        let expected = try semiPlanarSize(width: width, height: height, rowStride: rowStride, layout: layout)
        let stride = rowStride ?? 0
        if buffer.count != expected {
            let rows = stride != 0 ? "row stride \(stride)" : "no row padding"
            throw PreprocessError("\(layout) buffer for a \(width)x\(height) (width x height) frame with \(rows) must be "
                                    + "\(expected) bytes; got \(buffer.count). Check width/height/row stride, or copy the "
                                    + "planes into one contiguous buffer.")
        }
        let yStride = stride != 0 ? stride : width
        let cStride = stride != 0 ? stride : 2 * ((width + 1) / 2)
        let c = yStride * height
        let y = Plane(bytes: buffer, rowStride: yStride)
        let first = Plane(bytes: buffer, rowStride: cStride, pixelStride: 2, offset: c)
        let second = Plane(bytes: buffer, rowStride: cStride, pixelStride: 2, offset: c + 1)
        return try YUV420Frame(width: width, height: height, y: y, u: vFirst ? second : first, v: vFirst ? first : second)
    }

    private static func checkPlane(_ name: String, _ p: Plane, cols: Int, rows: Int) throws {
        if p.pixelStride < 1 { throw PreprocessError("\(name) plane pixel stride \(p.pixelStride) is not positive") }
        if p.rowStride < (cols - 1) * p.pixelStride + 1 {
            throw PreprocessError("\(name) plane bytes-per-row \(p.rowStride) is too small for \(cols) samples at pixel stride "
                                    + "\(p.pixelStride); pass the plane's bytes-per-row (CVPixelBufferGetBytesPerRowOfPlane)")
        }
        let last = p.offset + (rows - 1) * p.rowStride + (cols - 1) * p.pixelStride
        if p.offset < 0 || last >= p.bytes.count {
            throw PreprocessError("\(name) plane of \(p.bytes.count) bytes is too small for \(cols) x \(rows) samples at "
                                    + "bytes-per-row \(p.rowStride), pixel stride \(p.pixelStride), offset \(p.offset)")
        }
    }

    /// The frame as uint8 (height, width, 3) Y, Cb, Cr, full range (frames.py `_expand`).
    public func yuv444(range: ColorRange = .full) -> [UInt8] {
        y.bytes.withUnsafeBytes { yb in
            u.bytes.withUnsafeBytes { ub in
                v.bytes.withUnsafeBytes { vb in
                    expandToYUV444(width: width, height: height,
                                   y: PlaneView(base: yb, rowStride: y.rowStride, pixelStride: y.pixelStride, offset: y.offset),
                                   u: PlaneView(base: ub, rowStride: u.rowStride, pixelStride: u.pixelStride, offset: u.offset),
                                   v: PlaneView(base: vb, rowStride: v.rowStride, pixelStride: v.pixelStride, offset: v.offset),
                                   range: range)
                }
            }
        }
    }

    /// YUV444 straight from the two planes of a locked bi-planar `CVPixelBuffer`, without
    /// copying them first: `yPlane` is `CVPixelBufferGetBaseAddressOfPlane(pb, 0)` with
    /// `CVPixelBufferGetBytesPerRowOfPlane(pb, 0) * CVPixelBufferGetHeightOfPlane(pb, 0)` bytes,
    /// likewise `cbcrPlane` for plane 1. The same rules and checks as `nv12(yPlane:...)`.
    /// - Throws: `PreprocessError` when a plane is too small for the frame at its bytes-per-row.
    public static func yuv444(yPlane: UnsafeRawBufferPointer, yBytesPerRow: Int, cbcrPlane: UnsafeRawBufferPointer,
                              cbcrBytesPerRow: Int, width: Int, height: Int, range: ColorRange) throws -> [UInt8] {
        try checkFrameSide("width", width)
        try checkFrameSide("height", height)
        try checkBiPlanarStrides(yBytesPerRow: yBytesPerRow, cbcrBytesPerRow: cbcrBytesPerRow, width: width)
        let cw = (width + 1) / 2
        let ch = (height + 1) / 2
        let y = PlaneView(base: yPlane, rowStride: yBytesPerRow, pixelStride: 1, offset: 0)
        let u = PlaneView(base: cbcrPlane, rowStride: cbcrBytesPerRow, pixelStride: 2, offset: 0)
        let v = PlaneView(base: cbcrPlane, rowStride: cbcrBytesPerRow, pixelStride: 2, offset: 1)
        for (name, p, cols, rows) in [("Y", y, width, height), ("Cb (U)", u, cw, ch), ("Cr (V)", v, cw, ch)] {
            let last = p.offset + (rows - 1) * p.rowStride + (cols - 1) * p.pixelStride
            if p.rowStride < (cols - 1) * p.pixelStride + 1 || last >= p.base.count {
                throw PreprocessError("\(name) plane of \(p.base.count) bytes at bytes-per-row \(p.rowStride) is too small "
                                        + "for a \(width)x\(height) (width x height) frame")
            }
        }
        return expandToYUV444(width: width, height: height, y: y, u: u, v: v, range: range)
    }
}

/// A plane over borrowed bytes (only valid inside the closure that lent them).
struct PlaneView {
    let base: UnsafeRawBufferPointer
    let rowStride: Int
    let pixelStride: Int
    let offset: Int
}

/// The conversion itself; the planes were checked by the caller.
func expandToYUV444(width w: Int, height h: Int, y: PlaneView, u: PlaneView, v: PlaneView, range: ColorRange) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: w * h * 3)
    let video = range == .video
    videoYLUT.withUnsafeBufferPointer { ylut in
        videoCLUT.withUnsafeBufferPointer { clut in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<h {
                    let yRow = y.offset + r * y.rowStride
                    let uRow = u.offset + (r / 2) * u.rowStride
                    let vRow = v.offset + (r / 2) * v.rowStride
                    var k = r * w * 3
                    for c in 0..<w {
                        let yv = y.base[yRow + c * y.pixelStride]
                        let uv = u.base[uRow + (c / 2) * u.pixelStride]
                        let vv = v.base[vRow + (c / 2) * v.pixelStride]
                        if video {
                            o[k] = ylut[Int(yv)]
                            o[k + 1] = clut[Int(uv)]
                            o[k + 2] = clut[Int(vv)]
                        } else {
                            o[k] = yv
                            o[k + 1] = uv
                            o[k + 2] = vv
                        }
                        k += 3
                    }
                }
            }
        }
    }
    return out
}
