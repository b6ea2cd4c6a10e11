// The conformance harness: a BDCC case file in, a BDCR results file out, so that `backdrop
// conformance --impl swift` holds BackdropKit's preprocessing to the Python reference bit for
// bit (android_demo/core's Conformance.kt is the Kotlin twin). The formats, little-endian, are
// specified in the docstring of device_tests/conformance.py:
//
//   case file:    "BDCC", u32 version 1, u32 N, then per case 9 x u32 (name bytes L, layout 0 NV21 /
//                 1 NV12 / 2 I420, range 0 full / 1 video, width W, height H, row stride S (0: packed),
//                 bucket height Hb, bucket width Wb, buffer bytes B), L bytes name, B bytes buffer,
//                 Hb*Wb float32 bucket mask
//   results file: "BDCR", u32 version 1, u32 N, then per case u32 status: 1 (rejected) u32 M + M bytes
//                 UTF-8 message; 0 (ok) 6 x u32 placement, H*W*3 uint8 yuv444, 3*Hb*Wb float32 model
//                 input, H*W float32 camera mask
//
// A case is rejected (status 1) exactly where the reference raises FrameError / BucketError: a
// buffer that is not the size its layout, width, height and row stride give, or a stride below
// the minimum (NV21/NV12: 2*ceil(W/2); I420: W, its chroma rows ceil(S/2)).
import Foundation

/// A case file that cannot be read: wrong magic or version, truncated, or a field out of range.
public struct CaseFileError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum Conformance {
    /// The layouts of a case file, by their number.
    public enum Layout: UInt32 {
        case nv21 = 0, nv12 = 1, i420 = 2
    }

    /// The results file for a case file (both as bytes).
    /// - Throws: `CaseFileError` for a malformed case file (never for a rejected case: that is a result).
    public static func results(forCaseFile cases: [UInt8]) throws -> [UInt8] {
        var r = Reader(bytes: cases)
        let magic = try r.bytes(4, "its header")
        if magic != Array("BDCC".utf8) { throw CaseFileError("not a case file (its magic is not BDCC)") }
        let version = try r.u32("its header")
        if version != 1 { throw CaseFileError("case file version \(version) is not 1") }
        let n = Int(try r.u32("its header"))
        var out: [UInt8] = Array("BDCR".utf8)
        out.reserveCapacity(cases.count * 2)
        appendU32(&out, 1)
        appendU32(&out, UInt32(n))
        for i in 0..<n {
            var f = [Int](repeating: 0, count: 9)
            for k in 0..<9 { f[k] = Int(try r.u32("case \(i)'s fields")) }
            let (nameBytes, layoutCode, rangeCode, width, height, rowStride, bh, bw, bufferBytes) =
                (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8])
            _ = try r.bytes(nameBytes, "case \(i)'s name")
            let buffer = try r.bytes(bufferBytes, "case \(i)'s buffer")
            let (maskCount, overflow) = bh.multipliedReportingOverflow(by: bw)
            if overflow { throw CaseFileError("case \(i): bucket \(bh)x\(bw) is too large") }
            let mask = try r.floats(maskCount, "case \(i)'s bucket mask")
            guard let layout = Layout(rawValue: UInt32(layoutCode)) else {
                throw CaseFileError("case \(i): layout \(layoutCode) is not 0 (NV21), 1 (NV12) or 2 (I420)")
            }
            guard rangeCode <= 1 else { throw CaseFileError("case \(i): color range \(rangeCode) is not 0 (full) or 1 (video)") }
            let range: ColorRange = rangeCode == 0 ? .full : .video
            do {
                try appendCase(&out, layout: layout, range: range, width: width, height: height, rowStride: rowStride,
                               bucketHeight: bh, bucketWidth: bw, buffer: buffer, bucketMask: mask)
            } catch let e as PreprocessError {
                let text = Array(e.message.utf8)
                appendU32(&out, 1)
                appendU32(&out, UInt32(text.count))
                out.append(contentsOf: text)
            }
        }
        if r.remaining != 0 { throw CaseFileError("case file has \(r.remaining) bytes after its \(n) cases") }
        return out
    }

    /// One case's four outputs (placement, YUV444, model input, camera mask) as a results record.
    /// - Throws: `PreprocessError` where the reference rejects the case.
    public static func caseRecord(layout: Layout, range: ColorRange, width: Int, height: Int, rowStride: Int, bucketHeight: Int,
                                  bucketWidth: Int, buffer: [UInt8], bucketMask: [Float]) throws -> [UInt8] {
        var out: [UInt8] = []
        try appendCase(&out, layout: layout, range: range, width: width, height: height, rowStride: rowStride,
                       bucketHeight: bucketHeight, bucketWidth: bucketWidth, buffer: buffer, bucketMask: bucketMask)
        return out
    }

    private static func appendCase(_ out: inout [UInt8], layout: Layout, range: ColorRange, width: Int, height: Int,
                                   rowStride: Int, bucketHeight: Int, bucketWidth: Int, buffer: [UInt8],
                                   bucketMask: [Float]) throws {
        let stride: Int? = rowStride == 0 ? nil : rowStride
        let frame: YUV420Frame
        switch layout {
        case .nv21: frame = try YUV420Frame.nv21(buffer: buffer, width: width, height: height, rowStride: stride)
        case .nv12: frame = try YUV420Frame.nv12(buffer: buffer, width: width, height: height, rowStride: stride)
        case .i420: frame = try YUV420Frame.i420(buffer: buffer, width: width, height: height, rowStride: stride)
        }
        let placement = try plan(srcHeight: height, srcWidth: width, bucketHeight: bucketHeight, bucketWidth: bucketWidth)
        let yuv = frame.yuv444(range: range)
        let input = try modelInput(yuv444: yuv, placement: placement)
        let mask = try fromBucket(bucketMask, placement: placement)
        appendU32(&out, 0)
        for v in placement.fields { appendU32(&out, UInt32(v)) }
        out.append(contentsOf: yuv)
        appendFloats(&out, input)
        appendFloats(&out, mask)
    }

    static func appendU32(_ out: inout [UInt8], _ v: UInt32) {
        out.append(UInt8(v & 0xff))
        out.append(UInt8(v >> 8 & 0xff))
        out.append(UInt8(v >> 16 & 0xff))
        out.append(UInt8(v >> 24))
    }

    static func appendFloats(_ out: inout [UInt8], _ values: [Float]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: values.count * 4))
        out.withUnsafeMutableBufferPointer { o in
            for (i, v) in values.enumerated() {
                let b = v.bitPattern
                let k = start + 4 * i
                o[k] = UInt8(b & 0xff)
                o[k + 1] = UInt8(b >> 8 & 0xff)
                o[k + 2] = UInt8(b >> 16 & 0xff)
                o[k + 3] = UInt8(b >> 24)
            }
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var pos = 0
        var remaining: Int { bytes.count - pos }

        mutating func bytes(_ n: Int, _ what: String) throws -> [UInt8] {
            if n < 0 || remaining < n { throw CaseFileError("case file ends inside \(what) (byte \(pos), \(n) needed, \(remaining) left)") }
            defer { pos += n }
            return Array(bytes[pos..<pos + n])
        }

        mutating func u32(_ what: String) throws -> UInt32 {
            if remaining < 4 { throw CaseFileError("case file ends inside \(what) (byte \(pos))") }
            defer { pos += 4 }
            return readU32(bytes, pos)
        }

        mutating func floats(_ n: Int, _ what: String) throws -> [Float] {
            let (size, overflow) = n.multipliedReportingOverflow(by: 4)
            if overflow || remaining < size { throw CaseFileError("case file ends inside \(what) (byte \(pos), \(n) floats needed)") }
            var out = [Float](repeating: 0, count: n)
            for i in 0..<n { out[i] = Float(bitPattern: readU32(bytes, pos + 4 * i)) }
            pos += size
            return out
        }
    }
}
