// dist/<target>/manifest.json as Codable types (docs/manifest.md is the contract): the buckets,
// the threshold, the camera format and every artifact with its tensors, state form and checksum.
// A manifest whose schema MAJOR this code does not know is refused before anything else is
// read; a newer MINOR is read (new optional fields are ignored by JSONDecoder).
import Foundation

/// The schema MAJOR this code reads (docs/manifest.md "Versioning").
public let knownSchemaMajor = 1

/// How an artifact carries the previous mask (docs/manifest.md "State forms").
public enum StateForm: String, Codable, CaseIterable, Sendable {
    /// `forward(frame, prev_mask) -> (mask, next_mask)`: the app feeds `next_mask` back.
    case explicit
    /// `forward(frame, reset) -> mask`: the runtime keeps `mask_state` (Core ML: an `MLState`); the app passes the reset flag.
    case native
}

/// The element type of a tensor as the manifest names it.
public enum TensorDType: String, Codable, Sendable {
    case float32
    case float16
}

/// One input, output or state tensor of an artifact.
public struct TensorSpec: Codable, Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    /// `float32` or `float16` (Core ML artifacts); other strings are kept and refused where used.
    public let dtype: String
    public let layout: String

    /// The dtype as a `TensorDType`.
    /// - Throws: `ManifestError` for a dtype this library does not feed.
    public func elementType(of artifact: String) throws -> TensorDType {
        guard let t = TensorDType(rawValue: dtype) else {
            throw ManifestError("\(artifact): tensor \(name) is \(dtype); BackdropKit feeds float32 and float16 tensors only")
        }
        return t
    }

    /// The number of elements (the product of `shape`).
    public var count: Int { shape.reduce(1, *) }
}

/// One exported file (docs/manifest.md "Per artifact").
public struct Artifact: Codable, Equatable, Sendable {
    public let key: String
    /// Relative to the manifest.
    public let path: String
    public let format: String
    public let runtime: String
    public let precision: String
    public let stateForm: StateForm
    public let bucket: String
    /// In binding order: `frame` first, then `prev_mask` (explicit) or `reset` (native).
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let states: [TensorSpec]
    public let sha256: String
    public let sizeBytes: Int
    /// `true` when parity passed on the exporting host; `nil` when no runtime there could run it (Core ML on Linux).
    public let verified: Bool?
    /// E.g. `iOS18` for a stateful Core ML package; absent for runtimes without one.
    public let minOS: String?
    /// What the export measured; BackdropKit reads only `parity.thresholds.min_iou` from it.
    public let details: ArtifactDetails?

    enum CodingKeys: String, CodingKey {
        case key, path, format, runtime, precision, bucket, inputs, outputs, states, sha256, verified, details
        case stateForm = "state_form"
        case sizeBytes = "size_bytes"
        case minOS = "min_os"
    }

    /// The `frame` input, (1, 3, Hb, Wb).
    public var frameInput: TensorSpec { inputs[0] }

    /// The input after `frame`: `prev_mask` (explicit) or `reset` (native), if any.
    public var stateInput: TensorSpec? { inputs.count > 1 ? inputs[1] : nil }

    /// The per-frame IoU floor the export verified it to (`details.parity.thresholds.min_iou`: 0.99 for
    /// float, lower for int8, docs/manifest.md); nil where the export did not run it (Core ML on Linux).
    public var parityMinIoU: Double? { details?.parity?.thresholds?.minIoU }
}

/// The part of an artifact's `details` BackdropKit reads (the rest is ignored).
public struct ArtifactDetails: Codable, Equatable, Sendable {
    public let parity: ParitySummary?
}

/// `details.parity`: the export's parity check of the artifact on its host.
public struct ParitySummary: Codable, Equatable, Sendable {
    public let thresholds: ParityThresholds?
}

/// `details.parity.thresholds`: the floors the artifact was held to on every frame.
public struct ParityThresholds: Codable, Equatable, Sendable {
    public let minIoU: Double?

    enum CodingKeys: String, CodingKey {
        case minIoU = "min_iou"
    }
}

/// The manifest's `target`.
public struct Target: Codable, Equatable, Sendable {
    public let name: String
    public let platform: String
    public let description: String?
}

/// The manifest's `camera`: how the goldens' camera buffers are laid out.
public struct Camera: Codable, Equatable, Sendable {
    /// `nv21` (Android) or `nv12` (iOS).
    public let format: String
    public let color: String?
    public let chromaUpsampling: String?

    enum CodingKeys: String, CodingKey {
        case format, color
        case chromaUpsampling = "chroma_upsampling"
    }
}

/// dist/<target>/manifest.json, the fields app code uses.
public struct Manifest: Codable, Equatable, Sendable {
    public let schemaVersion: String
    public let backdropVersion: String?
    public let target: Target
    public let camera: Camera
    public let buckets: [Bucket]
    /// Binary mask = probability >= threshold, compared in float32 (`Float(threshold)`).
    public let threshold: Double
    public let artifacts: [Artifact]
    /// Bucket name -> golden file, relative to the manifest.
    public let goldens: [String: String]
    /// Bucket name -> sha256 of its golden file (schema 1.2).
    public let goldenSHA256: [String: String]?

    enum CodingKeys: String, CodingKey {
        case target, camera, buckets, threshold, artifacts, goldens
        case schemaVersion = "schema_version"
        case backdropVersion = "backdrop_version"
        case goldenSHA256 = "golden_sha256"
    }

    private struct Version: Decodable {
        let schemaVersion: String?
        enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version" }
    }

    /// Reads manifest.json.
    /// - Throws: `ManifestError` naming the file and what is wrong.
    public static func load(contentsOf url: URL) throws -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ManifestError("cannot read \(url.path): \(error.localizedDescription). Run `make export TARGET=ios-arm64` "
                                    + "(or `make ios-demo` for the app's copy) first.")
        }
        do {
            return try parse(data)
        } catch let e as ManifestError {
            throw ManifestError("\(url.path): \(e.message)")
        }
    }

    /// Parses manifest JSON: refuses an unknown schema MAJOR first, then decodes and checks the rest.
    /// - Throws: `ManifestError` (not JSON, unknown MAJOR, a field missing or of the wrong type, an inconsistency).
    public static func parse(_ data: Data) throws -> Manifest {
        let version: Version
        do {
            version = try JSONDecoder().decode(Version.self, from: data)
        } catch let e as DecodingError {
            throw ManifestError(describe(e))
        } catch {
            throw ManifestError("not valid JSON (\(error.localizedDescription))")
        }
        guard let text = version.schemaVersion else { throw ManifestError("the manifest has no \"schema_version\"") }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), Int(parts[1]) != nil else {
            throw ManifestError("schema_version \"\(text)\" is not MAJOR.MINOR")
        }
        if major != knownSchemaMajor {
            throw ManifestError("schema_version \(text) has MAJOR \(major); this code reads MAJOR \(knownSchemaMajor) only. "
                                    + "Update BackdropKit to a version that knows it, or export with the backdrop this app was built for.")
        }
        let m: Manifest
        do {
            m = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let e as DecodingError {
            throw ManifestError(describe(e))
        }
        try m.check()
        return m
    }

    /// Parses manifest JSON text (see `parse(_: Data)`).
    public static func parse(_ text: String) throws -> Manifest { try parse(Data(text.utf8)) }

    private func check() throws {
        if buckets.isEmpty { throw ManifestError("buckets is empty; a manifest lists at least one bucket") }
        for b in buckets where b.height < 1 || b.height > maxBucketSide || b.width < 1 || b.width > maxBucketSide {
            throw ManifestError("bucket \(b) has a side outside 1..\(maxBucketSide)")
        }
        if !(threshold >= 0 && threshold <= 1) { throw ManifestError("threshold \(threshold) is not within [0, 1]") }
        for a in artifacts {
            guard let b = buckets.first(where: { $0.name == a.bucket }) else {
                throw ManifestError("artifact \(a.key): bucket \"\(a.bucket)\" is not in buckets")
            }
            guard let frame = a.inputs.first else { throw ManifestError("artifact \(a.key) has no inputs") }
            if let floor = a.parityMinIoU, !(floor > 0 && floor <= 1) {
                throw ManifestError("artifact \(a.key): details.parity.thresholds.min_iou \(floor) is not within (0, 1]")
            }
            if frame.shape != [1, 3, b.height, b.width] {
                throw ManifestError("artifact \(a.key): its first input \(frame.name) has shape \(frame.shape); a frame of "
                                        + "bucket \(b) is [1, 3, \(b.height), \(b.width)]")
            }
        }
    }

    /// A decoding error as one line: what is wrong and where (`artifacts[3].inputs[0].dtype`).
    static func describe(_ e: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            var out = ""
            for k in keys {
                if let i = k.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + k.stringValue }
            }
            return out.isEmpty ? "the manifest" : out
        }
        switch e {
        case let .keyNotFound(key, ctx):
            return "\(path(ctx.codingPath)) has no \"\(key.stringValue)\""
        case let .typeMismatch(type, ctx):
            return "\(path(ctx.codingPath)) is not \(typeName(type)) (\(ctx.debugDescription))"
        case let .valueNotFound(type, ctx):
            return "\(path(ctx.codingPath)) is null; expected \(typeName(type))"
        case let .dataCorrupted(ctx):
            if ctx.codingPath.isEmpty { return "not valid JSON (\(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription))" }
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(e)"
        }
    }

    private static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: return "a string"
        case is Int.Type, is Double.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default: return "\(t)"
        }
    }

    /// The bucket called `name`.
    /// - Throws: `ManifestError` listing the manifest's buckets.
    public func bucket(named name: String) throws -> Bucket {
        guard let b = buckets.first(where: { $0.name == name }) else {
            throw ManifestError("no bucket \"\(name)\" in the manifest; it has \(buckets.map(\.name).joined(separator: ", "))")
        }
        return b
    }

    /// The bucket a height x width frame goes into (buckets.py `BucketSet.select`).
    public func selectBucket(height: Int, width: Int) throws -> Bucket {
        try BackdropKit.selectBucket(buckets, height: height, width: width)
    }

    /// The artifacts of one bucket, in manifest order.
    public func artifacts(for bucket: String) -> [Artifact] { artifacts.filter { $0.bucket == bucket } }

    /// The artifact of `bucket` with this format, precision and state form.
    /// - Throws: `ManifestError` listing what the bucket has.
    public func artifact(bucket: String, format: String, precision: String, stateForm: StateForm) throws -> Artifact {
        if let a = artifacts.first(where: {
            $0.bucket == bucket && $0.format == format && $0.precision == precision && $0.stateForm == stateForm
        }) {
            return a
        }
        let have = artifacts(for: bucket).map { "\($0.format)-\($0.precision)-\($0.stateForm.rawValue)" }
        throw ManifestError("no \(format) \(precision) \(stateForm.rawValue) artifact for bucket \"\(bucket)\"; it has "
                                + (have.isEmpty ? "none" : have.joined(separator: ", ")))
    }
}
