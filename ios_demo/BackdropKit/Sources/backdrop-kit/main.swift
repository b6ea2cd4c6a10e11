// backdrop-kit: BackdropKit as a command line, so any frame can be held against the Python
// reference (tests/test_app_core_cli.py, marker swift) and the whole preprocessing by
// `backdrop conformance --impl swift` (device_tests/conformance_swift.py). The same commands,
// options and outputs as android_demo/core's Cli.kt and Conformance.kt:
//
//   backdrop-kit conformance --cases CASES.bdcc --out RESULTS.bdcr
//   backdrop-kit preprocess --buffer frame.npy --layout nv12 --width 176 --height 98 [--row-stride S] \
//       [--range full|video] (--bucket 160x288 | --manifest dist/ios-arm64/manifest.json) --out input.npy \
//       [--dtype float32|float16]
//   backdrop-kit postprocess --mask mask.npy --width 176 --height 98 (--bucket HxW | --manifest M) \
//       --out camera_mask.npy [--binary-out binary.npy [--threshold T]] [--alpha-out alpha.npy [--feather LO,HI]]
//
// conformance: device_tests/conformance.py's case file in, its results file out (rejected cases
// are results). preprocess: a uint8 camera buffer (1-D .npy) -> the (1, 3, Hb, Wb) model input
// (float32, or float16 with --dtype float16 as the Core ML artifacts take it: Float16(x), round to
// nearest even); prints the bucket and placement as one JSON line. postprocess: a bucket mask
// (Hb * Wb float32 or float16 values, any shape) -> the float32 (H, W) frame mask, and optionally
// the uint8 binary mask (threshold: --threshold, else the manifest's) and the feathered alpha
// (--feather, else the threshold's default band).
// Exit status: 0 done, 2 bad arguments, input or case file, 3 a failed write; one line on stderr
// when it fails. `backdrop-kit --help` prints the usage.
// Every output is written to a temporary file next to it and renamed into place.
import BackdropKit
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct UsageError: Error { let message: String }
struct WriteError: Error { let message: String }

let usage = """
    usage: backdrop-kit conformance --cases CASES.bdcc --out RESULTS.bdcr
           backdrop-kit preprocess --buffer F.npy --layout nv21|nv12|i420 --width W --height H [--row-stride S] \
    [--range full|video] (--bucket HxW | --manifest M) --out F.npy [--dtype float32|float16]
           backdrop-kit postprocess --mask F.npy --width W --height H (--bucket HxW | --manifest M) --out F.npy \
    [--binary-out F.npy] [--threshold T] [--alpha-out F.npy] [--feather LO,HI]
    """

func options(_ args: ArraySlice<String>) throws -> [String: String] {
    var out: [String: String] = [:]
    var i = args.startIndex
    while i < args.endIndex {
        let a = args[i]
        guard a.hasPrefix("--") else { throw UsageError(message: "unexpected argument \"\(a)\"") }
        if let eq = a.firstIndex(of: "="), a.distance(from: a.startIndex, to: eq) > 2 {
            out[String(a[a.index(a.startIndex, offsetBy: 2)..<eq])] = String(a[a.index(after: eq)...])
            i += 1
        } else {
            guard i + 1 < args.endIndex else { throw UsageError(message: "\(a) needs a value") }
            out[String(a.dropFirst(2))] = args[i + 1]
            i += 2
        }
    }
    return out
}

extension Dictionary where Key == String, Value == String {
    func need(_ name: String) throws -> String {
        guard let v = self[name] else { throw UsageError(message: "--\(name) is required") }
        return v
    }

    func int(_ name: String, default value: Int? = nil) throws -> Int {
        guard let v = self[name] else {
            if let d = value { return d }
            throw UsageError(message: "--\(name) is required")
        }
        guard let n = Int(v) else { throw UsageError(message: "--\(name) \(v) is not an integer") }
        return n
    }

    func double(_ name: String) throws -> Double? {
        guard let v = self[name] else { return nil }
        guard let d = Double(v) else { throw UsageError(message: "--\(name) \(v) is not a number") }
        return d
    }
}

/// The bucket and, with --manifest, the manifest.
func bucketOf(_ o: [String: String], height: Int, width: Int) throws -> (Bucket, Manifest?) {
    let spec = o["bucket"], manifestPath = o["manifest"]
    if (spec == nil) == (manifestPath == nil) { throw UsageError(message: "pass exactly one of --bucket HxW and --manifest M") }
    if let spec = spec {
        let parts = spec.split(separator: "x", omittingEmptySubsequences: false).flatMap { $0.split(separator: "X", omittingEmptySubsequences: false) }
        guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]) else {
            throw UsageError(message: "--bucket \(spec) is not HxW, e.g. 160x288")
        }
        return (Bucket(name: "\(h)x\(w)", height: h, width: w), nil)
    }
    let manifest = try Manifest.load(contentsOf: URL(fileURLWithPath: manifestPath!))
    return (try manifest.selectBucket(height: height, width: width), manifest)
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: tmp))
    } catch {
        throw WriteError(message: "cannot write \(tmp): \(error.localizedDescription)")
    }
    if rename(tmp, path) != 0 {
        let reason = String(cString: strerror(errno))
        unlink(tmp)
        throw WriteError(message: "cannot rename \(tmp) to \(path): \(reason)")
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    do {
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw UsageError(message: "cannot read \(path): \(error.localizedDescription)")
    }
}

func preprocess(_ o: [String: String]) throws {
    let width = try o.int("width"), height = try o.int("height")
    let rowStride = try o.int("row-stride", default: 0)
    let buffer = try Npy.read(readFile(try o.need("buffer")), name: try o.need("buffer")).bytes()
    let range: ColorRange
    switch o["range"] ?? "full" {
    case "full": range = .full
    case "video": range = .video
    default: throw UsageError(message: "--range \(o["range"]!) is not full or video")
    }
    let dtype: TensorDType
    switch o["dtype"] ?? "float32" {
    case "float32": dtype = .float32
    case "float16": dtype = .float16
    default: throw UsageError(message: "--dtype \(o["dtype"]!) is not float32 or float16")
    }
    let layout = try o.need("layout")
    let stride: Int? = rowStride == 0 ? nil : rowStride
    let frame: YUV420Frame
    switch layout {
    case "nv21": frame = try YUV420Frame.nv21(buffer: buffer, width: width, height: height, rowStride: stride)
    case "nv12": frame = try YUV420Frame.nv12(buffer: buffer, width: width, height: height, rowStride: stride)
    case "i420": frame = try YUV420Frame.i420(buffer: buffer, width: width, height: height, rowStride: stride)
    default: throw UsageError(message: "--layout \(layout) is not nv21, nv12 or i420")
    }
    let out = try o.need("out")
    let (bucket, _) = try bucketOf(o, height: height, width: width)
    let p = try plan(srcHeight: height, srcWidth: width, bucket: bucket)
    let input = try modelInput(yuv444: frame.yuv444(range: range), placement: p)
    let shape = [1, 3, bucket.height, bucket.width]
    switch TensorValues.from(input, as: dtype) {
    case let .float32(v): try writeAtomically(Npy.encode(floats: v, shape: shape), to: out)
    case let .float16(v): try writeAtomically(Npy.encode(halves: v, shape: shape), to: out)
    }
    let name = bucket.name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    print("{\"bucket\": \"\(name)\", \"height\": \(bucket.height), \"width\": \(bucket.width), "
            + "\"scaled_size\": [\(p.scaledHeight), \(p.scaledWidth)], \"pad\": {\"top\": \(p.padTop), \"bottom\": \(p.padBottom), "
            + "\"left\": \(p.padLeft), \"right\": \(p.padRight)}}")
}

func postprocess(_ o: [String: String]) throws {
    let width = try o.int("width"), height = try o.int("height")
    let (bucket, manifest) = try bucketOf(o, height: height, width: width)
    let maskPath = try o.need("mask")
    let array = try Npy.read(readFile(maskPath), name: maskPath)
    let mask = array.descr == "<f2" ? toFloat32(try array.halves()) : try array.floats()
    let p = try plan(srcHeight: height, srcWidth: width, bucket: bucket)
    let frameMask = try fromBucket(mask, placement: p)
    let out = try o.need("out")
    let thresholdOption = try o.double("threshold")
    let shape = [height, width]
    var binary: [UInt8]?
    if o["binary-out"] != nil {
        guard let t = thresholdOption ?? manifest?.threshold else {
            throw UsageError(message: "--binary-out needs --threshold T or --manifest M")
        }
        binary = try binaryMask(frameMask, threshold: Float(t))
    }
    var alpha: [UInt8]?
    if o["alpha-out"] != nil {
        let low: Float, high: Float
        if let band = o["feather"] {
            let parts = band.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let lo = parts[0], let hi = parts[1] else { throw UsageError(message: "--feather \(band) is not LO,HI") }
            (low, high) = (Float(lo), Float(hi))
        } else {
            guard let t = thresholdOption ?? manifest?.threshold else {
                throw UsageError(message: "--alpha-out needs --feather LO,HI, --threshold T or --manifest M")
            }
            (low, high) = featherBand(threshold: t)
        }
        alpha = try featherAlpha(frameMask, low: low, high: high)
    }
    try writeAtomically(Npy.encode(floats: frameMask, shape: shape), to: out)
    if let path = o["binary-out"], let b = binary { try writeAtomically(Npy.encode(descr: "|u1", shape: shape, data: b), to: path) }
    if let path = o["alpha-out"], let a = alpha { try writeAtomically(Npy.encode(descr: "|u1", shape: shape, data: a), to: path) }
}

func conformance(_ o: [String: String]) throws {
    guard let cases = o["cases"], let out = o["out"] else {
        throw UsageError(message: "conformance needs --cases CASES.bdcc --out RESULTS.bdcr")
    }
    let results: [UInt8]
    do {
        results = try Conformance.results(forCaseFile: try readFile(cases))
    } catch let e as CaseFileError {
        throw UsageError(message: "\(cases): \(e.message)")
    }
    try writeAtomically(results, to: out)
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("backdrop-kit: \(message)\n".utf8))
    exit(status)
}

let args = CommandLine.arguments
let command = args.count > 1 ? args[1] : nil
do {
    let o = try options(args.dropFirst(2))
    switch command {
    case "--help", "-h", "help":
        print(usage)
    case "conformance": try conformance(o)
    case "preprocess": try preprocess(o)
    case "postprocess": try postprocess(o)
    case nil: throw UsageError(message: "no command")
    case let c?: throw UsageError(message: "unknown command \"\(c)\"")
    }
} catch let e as UsageError {
    fail("\(e.message) (backdrop-kit --help shows the usage)", status: 2)
} catch let e as WriteError {
    fail(e.message, status: 3)
} catch let e as PreprocessError {
    fail(e.message, status: 2)
} catch let e as ManifestError {
    fail(e.message, status: 2)
} catch let e as NpyError {
    fail(e.message, status: 2)
} catch {
    fail("\(error)", status: 2)
}
