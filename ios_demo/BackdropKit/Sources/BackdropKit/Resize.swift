// The float part of the pipeline, bit for bit the Python reference: buckets.py `_axis_taps`,
// `resize_bilinear`, `to_bucket`, `from_bucket` and models/reference.py `bucket_input`
// (value / 255 in float32 first, then the resize and replicate padding, channel-first).
//
// No fused multiply-add: the reference rounds `f * (b - a)` and then `a + ...` separately, and
// one fma rounds once, which changes pixels. Each float operation below is its own statement,
// and Swift does not contract separate operations on its own (it emits no `contract` / `fast`
// flags and no `llvm.fmuladd`, unlike C under `-ffp-contract=on`): `FusedMultiplyAddTests`
// compiles this module with `swiftc -O -emit-ir` and fails if any of that appears. Do not
// build BackdropKit with `-Ounchecked` plus fast-math flags, and do not replace these loops
// with Accelerate's `vDSP` ramps (they are free to fuse).
import Foundation

/// Source indices i0, i1 and float32 weight f of each output index along one axis (buckets.py `_axis_taps`).
struct AxisTaps {
    var i0: [Int]
    var i1: [Int]
    var f: [Float]
}

func axisTaps(nIn: Int, nOut: Int) -> AxisTaps {
    var taps = AxisTaps(i0: [Int](repeating: 0, count: nOut), i1: [Int](repeating: 0, count: nOut),
                        f: [Float](repeating: 0, count: nOut))
    let den = 2 * nOut
    for d in 0..<nOut {
        let num = max((2 * d + 1) * nIn - nOut, 0)  // s = num / (2 nOut)
        var i0 = num / den
        let rem = num - i0 * den
        var f = Float(rem) / Float(den)  // one float32 division; both operands are exact in float32
        if i0 >= nIn - 1 {
            i0 = nIn - 1
            f = 0
        }
        taps.i0[d] = i0
        taps.i1[d] = min(i0 + 1, nIn - 1)
        taps.f[d] = f
    }
    return taps
}

/// buckets.py `resize_bilinear` of float32 (inH, inW, channels) interleaved values to (outH,
/// outW, channels): half-pixel centres, no antialiasing; rows first, `a + fx * (b - a)`, then
/// `t0 + fy * (t1 - t0)`, every float32 operation rounded on its own.
/// - Throws: `PreprocessError` for an empty image, a value count that is not inH * inW *
///   channels, or an output side outside 1..65536.
public func resizeBilinear(_ src: [Float], inH: Int, inW: Int, channels: Int, outH: Int, outW: Int) throws -> [Float] {
    if inH < 1 || inW < 1 || channels < 1 { throw PreprocessError("resizeBilinear needs a non-empty image, got \(inH)x\(inW)x\(channels)") }
    if src.count != inH * inW * channels {
        throw PreprocessError("resizeBilinear: \(src.count) values are not \(inH) x \(inW) x \(channels)")
    }
    try checkFrameSide("height", outH)
    try checkFrameSide("width", outW)
    let ty = axisTaps(nIn: inH, nOut: outH)
    let tx = axisTaps(nIn: inW, nOut: outW)
    let c = channels
    let rowLength = outW * c
    // Only the input rows some output row reads are resized along x (each row is independent,
    // so the values are the same as resizing every row, as the reference does).
    var needed = [Bool](repeating: false, count: inH)
    for i in 0..<outH {
        needed[ty.i0[i]] = true
        needed[ty.i1[i]] = true
    }
    var rows = [Float](repeating: 0, count: inH * rowLength)  // (inH, outW, C)
    src.withUnsafeBufferPointer { s in
        rows.withUnsafeMutableBufferPointer { out in
            for r in 0..<inH where needed[r] {
                let sRow = r * inW * c
                let dRow = r * rowLength
                for j in 0..<outW {
                    let fx = tx.f[j]
                    let a = sRow + tx.i0[j] * c
                    let b = sRow + tx.i1[j] * c
                    for k in 0..<c {
                        let diff = s[b + k] - s[a + k]
                        let step = fx * diff
                        out[dRow + j * c + k] = s[a + k] + step
                    }
                }
            }
        }
    }
    var result = [Float](repeating: 0, count: outH * rowLength)
    rows.withUnsafeBufferPointer { rw in
        result.withUnsafeMutableBufferPointer { out in
            for i in 0..<outH {
                let fy = ty.f[i]
                let t0 = ty.i0[i] * rowLength
                let t1 = ty.i1[i] * rowLength
                let d = i * rowLength
                for j in 0..<rowLength {
                    let diff = rw[t1 + j] - rw[t0 + j]
                    let step = fy * diff
                    out[d + j] = rw[t0 + j] + step
                }
            }
        }
    }
    return result
}

/// `Float(v) / 255` for every byte value (frames.py: one float32 division, not a multiplication by 1/255).
let unitScale: [Float] = (0..<256).map { Float($0) / 255 }

/// models/reference.py `bucket_input(yuv, placement, .)[0, :3]`: uint8 YUV444 (srcHeight,
/// srcWidth, 3) -> float32 (3, bucketHeight, bucketWidth), the `frame` input without its batch
/// axis: value / 255 in float32, resized to the placement's scaled size (bilinear), replicate
/// padding to the bucket, channel-first (Y, Cb, Cr).
/// - Throws: `PreprocessError` when `yuv444` is not srcHeight * srcWidth * 3 bytes.
public func modelInput(yuv444: [UInt8], placement p: Placement) throws -> [Float] {
    let h = p.srcHeight, w = p.srcWidth
    if yuv444.count != h * w * 3 {
        throw PreprocessError("modelInput: \(yuv444.count) bytes are not \(h) x \(w) x 3 (the placement's frame size)")
    }
    let unit = yuv444.map { unitScale[Int($0)] }
    let scaled = try resizeBilinear(unit, inH: h, inW: w, channels: 3, outH: p.scaledHeight, outW: p.scaledWidth)
    let hb = p.bucketHeight, wb = p.bucketWidth, sh = p.scaledHeight, sw = p.scaledWidth
    var out = [Float](repeating: 0, count: 3 * hb * wb)
    scaled.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { o in
            for y in 0..<hb {
                let sy = min(max(y - p.padTop, 0), sh - 1)
                for x in 0..<wb {
                    let sx = min(max(x - p.padLeft, 0), sw - 1)
                    let k = (sy * sw + sx) * 3
                    o[y * wb + x] = s[k]
                    o[(hb + y) * wb + x] = s[k + 1]
                    o[(2 * hb + y) * wb + x] = s[k + 2]
                }
            }
        }
    }
    return out
}

/// buckets.py `from_bucket`: a float32 (bucketHeight, bucketWidth) mask cropped to the
/// placement's scaled area and resized (bilinear) to (srcHeight, srcWidth).
/// - Throws: `PreprocessError` when `mask` is not bucketHeight * bucketWidth values.
public func fromBucket(_ mask: [Float], placement p: Placement) throws -> [Float] {
    if mask.count != p.bucketHeight * p.bucketWidth {
        throw PreprocessError("fromBucket: \(mask.count) values are not \(p.bucketHeight) x \(p.bucketWidth) (the bucket's size)")
    }
    let sh = p.scaledHeight, sw = p.scaledWidth
    var crop = [Float](repeating: 0, count: sh * sw)
    for y in 0..<sh {
        let from = (p.padTop + y) * p.bucketWidth + p.padLeft
        crop.replaceSubrange(y * sw..<(y + 1) * sw, with: mask[from..<from + sw])
    }
    return try resizeBilinear(crop, inH: sh, inW: sw, channels: 1, outH: p.srcHeight, outW: p.srcWidth)
}

/// The float32 values converted one by one with `Float16(x)`: IEEE round to nearest, ties to
/// even (numpy's `astype(np.float16)` rounds the same way). Core ML artifacts take float16
/// `frame`, `prev_mask` and `reset` inputs (the manifest's `inputs[].dtype`).
public func toFloat16(_ values: [Float]) -> [Float16] {
    values.map { Float16($0) }
}

/// float16 values widened to float32 (exact), e.g. a Core ML `mask` output before `fromBucket`.
public func toFloat32(_ values: [Float16]) -> [Float] {
    values.map { Float($0) }
}
