// Core ML for the app: one exported .mlpackage as a BackdropKit `ModelRunner` (the `frame` and
// `prev_mask` / `reset` inputs and the outputs as MLMultiArray, bound by the manifest's names;
// the native form's state in an `MLState`, iOS 18 / macOS 15), the packages compiled once and
// cached, and a locked bi-planar `CVPixelBuffer` read as YUV444 without copying its planes.
//
// Everything is inside `#if canImport(CoreML)`: on Linux (where `make ios-kit-test` builds the
// package) this target compiles to an empty module. NOT BUILT OR RUN IN CI: no Apple SDK there.
// The code follows Apple's documented APIs (MLModel, MLState, MLMultiArray.withUnsafe(Mutable)Bytes,
// CVPixelBufferGetBaseAddressOfPlane); the first build in Xcode is its first compile.
#if canImport(CoreML)
import BackdropKit
import CoreML
import Foundation

/// Core ML cannot load or run an artifact as asked.
public struct CoreMLRunnerError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// Compiles `.mlpackage` files to `.mlmodelc` once and keeps them (Core ML loads only compiled models).
@available(iOS 16.0, macOS 13.0, *)
public enum CoreMLModelCache {
    /// The compiled model of `artifact`, whose package lies at `bundleRoot/artifact.path`: from
    /// `cacheDirectory/<sha256>.mlmodelc` when compiled before, else compiled now (seconds).
    /// - Throws: `CoreMLRunnerError` for a non-Core ML artifact, a missing package or a failed compile.
    public static func compiledModel(for artifact: Artifact, bundleRoot: URL, cacheDirectory: URL) throws -> URL {
        guard artifact.format == "coreml" else {
            throw CoreMLRunnerError("\(artifact.key) is a \(artifact.format) artifact, not Core ML")
        }
        let package = bundleRoot.appendingPathComponent(artifact.path)
        guard FileManager.default.fileExists(atPath: package.path) else {
            throw CoreMLRunnerError("\(package.path) is missing: run `make ios-demo` so the app bundles \(artifact.path)")
        }
        let target = cacheDirectory.appendingPathComponent("\(artifact.sha256).mlmodelc")
        if FileManager.default.fileExists(atPath: target.path) { return target }
        try FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        let compiled: URL
        do {
            compiled = try MLModel.compileModel(at: package)
        } catch {
            throw CoreMLRunnerError("cannot compile \(artifact.path): \(error.localizedDescription)")
        }
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.moveItem(at: compiled, to: target)
        return target
    }
}

/// One Core ML artifact loaded for one camera stream (one `MLState` per stream for the native form).
@available(iOS 16.0, macOS 13.0, *)
public final class CoreMLRunner: ModelRunner {
    public let artifact: Artifact
    public let model: MLModel
    /// The native form's `MLState` (typed `AnyObject` so the class exists before iOS 18).
    private var state: AnyObject?
    private let frame: MLMultiArray
    private let second: MLMultiArray  // prev_mask (explicit) or reset (native)

    /// Loads `compiledModel` (from `CoreMLModelCache`) with `computeUnits` (`.all` by default;
    /// a native model of a bucket whose state is not a multiple of 32 needs `.cpuAndGPU`, see
    /// the artifact's `details.spec_warnings` and docs/formats.md "Neural Engine rule").
    /// - Throws: `CoreMLRunnerError` (a native artifact before iOS 18, an input of an unknown
    ///   dtype) or Core ML's error.
    public init(artifact: Artifact, compiledModel: URL, computeUnits: MLComputeUnits = .all) throws {
        guard artifact.format == "coreml", artifact.inputs.count == 2, artifact.outputs.count >= 1 else {
            throw CoreMLRunnerError("\(artifact.key) is not a backdrop Core ML artifact (frame + prev_mask/reset inputs)")
        }
        let config = MLModelConfiguration()
        config.computeUnits = computeUnits
        model = try MLModel(contentsOf: compiledModel, configuration: config)
        self.artifact = artifact
        frame = try CoreMLRunner.array(for: artifact.inputs[0], of: artifact)
        second = try CoreMLRunner.array(for: artifact.inputs[1], of: artifact)
        if artifact.stateForm == .native {
            guard #available(iOS 18.0, macOS 15.0, *) else {
                throw CoreMLRunnerError("\(artifact.key) keeps its state in an MLState, which needs iOS 18 / macOS 15; "
                                            + "run the explicit-state package (min_os iOS16) on this OS")
            }
            state = model.makeState()
        }
    }

    private static func array(for spec: TensorSpec, of artifact: Artifact) throws -> MLMultiArray {
        let type: MLMultiArrayDataType
        switch try spec.elementType(of: artifact.key) {
        case .float16: type = .float16
        case .float32: type = .float32
        }
        return try MLMultiArray(shape: spec.shape.map { NSNumber(value: $0) }, dataType: type)
    }

    public var runtimeVersions: [String: String] {
        let v = ProcessInfo.processInfo.operatingSystemVersion
        return ["coreml": "OS \(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"]
    }

    /// Core ML does not say how many threads it uses.
    public var threads: Int { 0 }

    /// A fresh, zero-filled `MLState` (the other way to reset the native form; passing reset = 1
    /// gives the same result, and is what `SegmentationStream` does).
    public func resetState() {
        guard artifact.stateForm == .native else { return }
        if #available(iOS 18.0, macOS 15.0, *) { state = model.makeState() }
    }

    public func run(_ feed: ModelFeed) throws -> ModelOutput {
        guard feed.artifact.key == artifact.key else {
            throw CoreMLRunnerError("a feed for \(feed.artifact.key) was given to the runner of \(artifact.key)")
        }
        try CoreMLRunner.fill(frame, with: feed.input, name: artifact.inputs[0].name)
        switch artifact.stateForm {
        case .explicit:
            guard let prev = feed.prevMask else { throw CoreMLRunnerError("\(artifact.key): the feed has no prev_mask") }
            try CoreMLRunner.fill(second, with: prev, name: artifact.inputs[1].name)
        case .native:
            guard let reset = feed.resetInput else { throw CoreMLRunnerError("\(artifact.key): the feed has no reset input") }
            try CoreMLRunner.fill(second, with: reset, name: artifact.inputs[1].name)
        }
        let input = try MLDictionaryFeatureProvider(dictionary: [
            artifact.inputs[0].name: MLFeatureValue(multiArray: frame),
            artifact.inputs[1].name: MLFeatureValue(multiArray: second),
        ])
        let out: MLFeatureProvider
        if artifact.stateForm == .native {
            if #available(iOS 18.0, macOS 15.0, *) {
                guard let s = state as? MLState else { throw CoreMLRunnerError("\(artifact.key): its MLState is gone (closed?)") }
                out = try model.prediction(from: input, using: s)
            } else {
                throw CoreMLRunnerError("\(artifact.key) needs an MLState (iOS 18 / macOS 15)")
            }
        } else {
            out = try model.prediction(from: input)
        }
        let mask = try CoreMLRunner.values(of: out, name: artifact.outputs[0].name, key: artifact.key)
        var next: TensorValues?
        if artifact.stateForm == .explicit {
            guard artifact.outputs.count >= 2 else { throw CoreMLRunnerError("\(artifact.key) has no next_mask output") }
            next = try CoreMLRunner.values(of: out, name: artifact.outputs[1].name, key: artifact.key)
        }
        return ModelOutput(mask: mask, nextMask: next)
    }

    public func close() { state = nil }

    /// Writes `values` into `array` in C order, honouring the array's strides.
    static func fill(_ array: MLMultiArray, with values: TensorValues, name: String) throws {
        guard values.count == array.count else {
            throw CoreMLRunnerError("input \(name) has \(array.count) elements; the feed has \(values.count)")
        }
        let shape = array.shape.map(\.intValue)
        switch (values, array.dataType) {
        case let (.float16(v), .float16):
            array.withUnsafeMutableBytes { raw, strides in
                let p = raw.bindMemory(to: UInt16.self)
                forEachIndex(shape: shape, strides: strides) { flat, offset in p[offset] = v[flat].bitPattern }
            }
        case let (.float32(v), .float32):
            array.withUnsafeMutableBytes { raw, strides in
                let p = raw.bindMemory(to: Float.self)
                forEachIndex(shape: shape, strides: strides) { flat, offset in p[offset] = v[flat] }
            }
        default:
            throw CoreMLRunnerError("input \(name) is \(array.dataType.rawValue) in the model but the feed is \(values.dtype.rawValue)")
        }
    }

    /// An output's values in C order, honouring its strides (Core ML pads rows of some outputs).
    static func values(of provider: MLFeatureProvider, name: String, key: String) throws -> TensorValues {
        guard let array = provider.featureValue(for: name)?.multiArrayValue else {
            throw CoreMLRunnerError("\(key) returned no multi-array output \(name)")
        }
        let shape = array.shape.map(\.intValue)
        switch array.dataType {
        case .float16:
            var out = [Float16](repeating: 0, count: array.count)
            array.withUnsafeBytes { raw, strides in
                let p = raw.bindMemory(to: UInt16.self)
                forEachIndex(shape: shape, strides: strides) { flat, offset in out[flat] = Float16(bitPattern: p[offset]) }
            }
            return .float16(out)
        case .float32:
            var out = [Float](repeating: 0, count: array.count)
            array.withUnsafeBytes { raw, strides in
                let p = raw.bindMemory(to: Float.self)
                forEachIndex(shape: shape, strides: strides) { flat, offset in out[flat] = p[offset] }
            }
            return .float32(out)
        default:
            throw CoreMLRunnerError("\(key): output \(name) has data type \(array.dataType.rawValue); expected float16 or float32")
        }
    }

    /// Calls `body(flat C-order index, element offset by strides)` for every element.
    static func forEachIndex(shape: [Int], strides: [Int], _ body: (Int, Int) -> Void) {
        let n = shape.reduce(1, *)
        if n == 0 { return }
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for flat in 0..<n {
            body(flat, offset)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}
#endif

#if canImport(CoreVideo)
import BackdropKit
import CoreVideo

/// Camera frames from AVFoundation: a bi-planar 4:2:0 `CVPixelBuffer` (`420f` or `420v`).
public enum PixelBufferFrames {
    /// The buffer's YUV444 (full range: `420v` is expanded), read in place from its two planes
    /// (each at its own bytes-per-row) while the buffer is locked read-only.
    /// - Throws: `PreprocessError` for another pixel format or planes too small for the frame.
    public static func yuv444(_ buffer: CVPixelBuffer) throws -> (yuv: [UInt8], width: Int, height: Int, range: ColorRange) {
        let range = try ColorRange(pixelFormat: CVPixelBufferGetPixelFormatType(buffer))
        guard CVPixelBufferGetPlaneCount(buffer) == 2 else {
            throw PreprocessError("a 420f/420v pixel buffer has 2 planes; this one has \(CVPixelBufferGetPlaneCount(buffer))")
        }
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let width = CVPixelBufferGetWidth(buffer), height = CVPixelBufferGetHeight(buffer)
        guard let y = CVPixelBufferGetBaseAddressOfPlane(buffer, 0), let c = CVPixelBufferGetBaseAddressOfPlane(buffer, 1) else {
            throw PreprocessError("the pixel buffer's planes have no base address (is it locked?)")
        }
        let yRow = CVPixelBufferGetBytesPerRowOfPlane(buffer, 0), cRow = CVPixelBufferGetBytesPerRowOfPlane(buffer, 1)
        let yBytes = UnsafeRawBufferPointer(start: y, count: yRow * CVPixelBufferGetHeightOfPlane(buffer, 0))
        let cBytes = UnsafeRawBufferPointer(start: c, count: cRow * CVPixelBufferGetHeightOfPlane(buffer, 1))
        let yuv = try YUV420Frame.yuv444(yPlane: yBytes, yBytesPerRow: yRow, cbcrPlane: cBytes, cbcrBytesPerRow: cRow,
                                         width: width, height: height, range: range)
        return (yuv, width, height, range)
    }
}
#endif
