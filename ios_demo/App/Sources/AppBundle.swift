// The export `make ios-demo` copied into the app (Resources/backdrop: manifest.json trimmed to
// the bundled packages, the .mlpackage folders at their manifest paths, one short golden), the
// choice of artifact per OS, and Core ML models compiled once into Application Support.
import BackdropKit
import BackdropKitCoreML
import CoreML
import Foundation

final class AppBundle {
    let root: URL
    let manifest: Manifest
    let manifestBytes: [UInt8]
    private let cache: URL

    /// - Throws: `ManifestError` / `BenchError` naming what is missing (run `make ios-demo`).
    init() throws {
        guard let root = Bundle.main.url(forResource: "backdrop", withExtension: nil) else {
            throw BenchError("the app has no backdrop/ resource folder: run `make ios-demo`, then add ios_demo/App/Resources/backdrop "
                                + "to the target as a folder reference")
        }
        self.root = root
        let url = root.appendingPathComponent("manifest.json")
        manifest = try Manifest.load(contentsOf: url)
        manifestBytes = [UInt8](try Data(contentsOf: url))
        cache = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("backdrop-models", isDirectory: true)
    }

    /// The state form this OS runs: Core ML's MLState (native) needs iOS 18, the explicit form iOS 16.
    var stateForm: StateForm {
        if #available(iOS 18.0, *) { return .native }
        return .explicit
    }

    /// The Core ML artifact of `bucket` at `precision` in this OS's state form.
    func artifact(bucket: String, precision: String = "fp16") throws -> Artifact {
        try manifest.artifact(bucket: bucket, format: "coreml", precision: precision, stateForm: stateForm)
    }

    /// The precisions bundled for Core ML (fp16, int8, palette6, as `make ios-demo` copied them).
    var precisions: [String] {
        var seen: [String] = []
        for a in manifest.artifacts where a.format == "coreml" && !seen.contains(a.precision) { seen.append(a.precision) }
        return seen
    }

    /// A Core ML runner for `artifact` (the package compiled on first use, then cached).
    func runner(for artifact: Artifact) throws -> CoreMLRunner {
        let compiled = try CoreMLModelCache.compiledModel(for: artifact, bundleRoot: root, cacheDirectory: cache)
        return try CoreMLRunner(artifact: artifact, compiledModel: compiled)
    }

    /// The bundled goldens (one bucket's, short: through its last reset), by bucket.
    func goldens() throws -> [String: GoldenSequence] {
        var out: [String: GoldenSequence] = [:]
        for (bucket, rel) in manifest.goldens {
            let url = root.appendingPathComponent(rel)
            if FileManager.default.fileExists(atPath: url.path) { out[bucket] = try GoldenSequence.load(contentsOf: url) }
        }
        if out.isEmpty { throw BenchError("no golden is bundled: run `make ios-demo` (it copies one short golden)") }
        return out
    }

    /// The start-up self-test: the bundled golden through BackdropKit and Core ML, every model
    /// input bit-exact with the golden's (in float16) and every mask at the IoU floor its export verified (`parityFloor`).
    func selfTest() -> [ParityResult] {
        do {
            return try goldens().sorted { $0.key < $1.key }.map { bucket, golden in
                let a = try artifact(bucket: bucket)
                return checkParity(manifest: manifest, artifact: a, golden: golden, runner: try runner(for: a))
            }
        } catch {
            return [ParityResult(key: "self-test", frames: 0, minIoU: 0, worstFrame: 0, threshold: manifest.threshold,
                                 required: minParityIoU, inputMismatches: 0, error: error.localizedDescription)]
        }
    }
}
