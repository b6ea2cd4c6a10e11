// Aspect-ratio buckets: which bucket a frame goes into and where it sits there, bit for bit the
// Python reference backdrop/core/buckets.py (docs/buckets.md "Selection", "Placement"). Every
// rule is exact integer arithmetic (Swift's Int is 64 bits on every platform this runs on;
// products stay below 2^56). Sizes are height x width, unlike camera APIs.
import Foundation

/// One fixed network input size (docs/buckets.md), as the manifest's `buckets` lists it.
public struct Bucket: Codable, Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let height: Int
    public let width: Int

    public init(name: String, height: Int, width: Int) {
        self.name = name
        self.height = height
        self.width = width
    }

    /// `name HxW`, e.g. `landscape_16x9 160x288`.
    public var description: String { "\(name) \(height)x\(width)" }
}

/// buckets.py MAX_ASPECT_FACTOR: a frame may be at most this many times wider or narrower than its nearest bucket.
public let maxAspectFactor = 2

/// buckets.py `BucketSet.select`: the bucket whose aspect ratio is nearest the frame's, compared
/// exactly in integers (distortion p / q >= 1 with p = max(w * Hb, h * Wb), q = min(...));
/// ties go to the earlier bucket; a frame more than 2x off even the nearest one is refused
/// (exactly 2x is accepted).
/// - Throws: `PreprocessError` for a bad frame size, no buckets, or the 2x limit.
public func selectBucket(_ buckets: [Bucket], height: Int, width: Int) throws -> Bucket {
    try checkFrameSide("height", height)
    try checkFrameSide("width", width)
    guard var best = buckets.first else { throw PreprocessError("no buckets to choose from; the manifest lists them") }
    func distortion(_ b: Bucket) -> (Int, Int) {
        let a = width * b.height
        let c = height * b.width
        return a >= c ? (a, c) : (c, a)
    }
    var (bestP, bestQ) = distortion(best)
    for b in buckets.dropFirst() {
        let (p, q) = distortion(b)
        if p * bestQ < bestP * q {  // strictly better: ties keep the earlier bucket
            best = b
            bestP = p
            bestQ = q
        }
    }
    if bestP > maxAspectFactor * bestQ {
        throw PreprocessError("frame \(height)x\(width) (HxW) is more than \(maxAspectFactor)x wider or narrower than the "
                                + "nearest bucket \(best); crop the frame, or export a bucket of that shape "
                                + "(backdrop export --buckets NAME=HxW,...)")
    }
    return best
}

/// buckets.py `Placement`: the frame resized to `scaledHeight` x `scaledWidth` with its top-left
/// corner at (`padTop`, `padLeft`) of the bucket; the padding repeats its edge pixels.
public struct Placement: Equatable, Sendable {
    public let srcHeight: Int
    public let srcWidth: Int
    public let bucketHeight: Int
    public let bucketWidth: Int
    public let scaledHeight: Int
    public let scaledWidth: Int
    public let padTop: Int
    public let padBottom: Int
    public let padLeft: Int
    public let padRight: Int

    /// The six integers of a conformance result, in device_tests/conformance.py's order.
    public var fields: [Int] { [scaledHeight, scaledWidth, padTop, padBottom, padLeft, padRight] }
}

/// buckets.py `plan`: the largest aspect-preserving fit, centred, in exact integers; the odd
/// padding pixel goes to the bottom / right. Does not apply the 2x limit (`selectBucket` does).
/// - Throws: `PreprocessError` for a frame side outside 1..65536 or a bucket side outside 1..4096.
public func plan(srcHeight: Int, srcWidth: Int, bucketHeight: Int, bucketWidth: Int) throws -> Placement {
    try checkFrameSide("height", srcHeight)
    try checkFrameSide("width", srcWidth)
    if bucketHeight < 1 || bucketHeight > maxBucketSide || bucketWidth < 1 || bucketWidth > maxBucketSide {
        throw PreprocessError("bucket \(bucketHeight)x\(bucketWidth) is not within 1..\(maxBucketSide) on each side")
    }
    let h = srcHeight, w = srcWidth, hb = bucketHeight, wb = bucketWidth
    func roundDiv(_ num: Int, _ den: Int) -> Int { (2 * num + den) / (2 * den) }  // num >= 0
    let sh: Int, sw: Int
    if hb * w <= wb * h {  // height limits the scale (also when both fit exactly)
        sh = hb
        sw = min(max(roundDiv(w * hb, h), 1), wb)
    } else {
        sw = wb
        sh = min(max(roundDiv(h * wb, w), 1), hb)
    }
    let top = (hb - sh) / 2
    let left = (wb - sw) / 2
    return Placement(srcHeight: h, srcWidth: w, bucketHeight: hb, bucketWidth: wb, scaledHeight: sh, scaledWidth: sw,
                     padTop: top, padBottom: hb - sh - top, padLeft: left, padRight: wb - sw - left)
}

/// `plan` for a bucket.
public func plan(srcHeight: Int, srcWidth: Int, bucket: Bucket) throws -> Placement {
    try plan(srcHeight: srcHeight, srcWidth: srcWidth, bucketHeight: bucket.height, bucketWidth: bucket.width)
}
