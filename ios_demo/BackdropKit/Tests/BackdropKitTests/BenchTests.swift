// The app's benchmark mode and self-test without a phone: the bench protocol driven by a fake
// clock and a fake model over the export's goldens, the results document it writes (the shape of
// backdrop/schemas/results.schema.json; set BACKDROP_RESULTS_SAMPLE=path to keep a copy for
// `backdrop.bench.document.validate_document`), the golden parity check, the launch arguments,
// and the helpers (SHA-256, Python's round, numpy's percentiles).
import BackdropKit
import Foundation
import XCTest

/// Every call moves time on by 1 ms; sleeping moves it by the sleep.
final class FakeClock: BenchClock {
    var nanos: UInt64 = 0
    var slept: [Double] = []
    func nanoTime() -> UInt64 {
        nanos += 1_000_000
        return nanos
    }
    func now() -> Date { Date(timeIntervalSince1970: 1_800_000_000.25 + Double(nanos) / 1e9) }
    func sleep(seconds: Double) {
        slept.append(seconds)
        nanos += UInt64(seconds * 1e9)
    }
}

/// A model that answers each golden frame with the reference's own probability (found by its
/// float16 model input, sampled), or with zeros.
final class GoldenModel: ModelRunner {
    let answers: [[UInt16]: [Float]]
    static func key(_ x: [Float16]) -> [UInt16] { stride(from: 0, to: x.count, by: 97).map { x[$0].bitPattern } }
    let zeros: Bool
    var calls = 0
    var closed = false
    init(golden: GoldenSequence, zeros: Bool = false) {
        var a: [[UInt16]: [Float]] = [:]
        for k in 0..<golden.count { a[GoldenModel.key(toFloat16(golden.frames[k]))] = golden.expectedMasks[k] }
        answers = a
        self.zeros = zeros
    }
    var runtimeVersions: [String: String] { ["fake": "1"] }
    var threads: Int { 2 }
    func run(_ feed: ModelFeed) throws -> ModelOutput {
        calls += 1
        let n = feed.bucket.height * feed.bucket.width
        var mask = [Float](repeating: 0, count: n)
        if !zeros {
            guard case let .float16(x) = feed.input, let m = answers[GoldenModel.key(x)] else {
                throw BenchError("not a golden frame")
            }
            mask = m
        }
        let out = TensorValues.from(mask, as: .float16)
        return ModelOutput(mask: out, nextMask: feed.artifact.stateForm == .explicit ? out : nil)
    }
    func close() { closed = true }
}

final class BenchTests: XCTestCase {
    private static var loaded: [String: GoldenSequence]?

    /// Each bucket's golden as the app loads it (read once: inflating them is most of the test's time).
    private func goldenSequences(_ m: Manifest) throws -> [String: GoldenSequence] {
        if let g = BenchTests.loaded { return g }
        var out: [String: GoldenSequence] = [:]
        for (bucket, rel) in m.goldens { out[bucket] = try GoldenSequence.load(contentsOf: try requireDist().appendingPathComponent(rel)) }
        BenchTests.loaded = out
        return out
    }

    func testTheBenchRunsTheProtocolAndWritesTheDocument() throws {
        let m = try loadManifest()
        var goldens = try goldenSequences(m)
        let first = m.buckets[0].name
        goldens = goldens.filter { $0.key == first }  // as `make ios-demo` bundles one bucket's golden
        let p = try BenchProtocol.named("quick", warmup: 1, minFrames: 6, minSeconds: 0, rounds: 2, cooldownS: 0.5)
        XCTAssertEqual(p.name, "custom")
        let clock = FakeClock()
        var loads: [String] = []
        let runner = BenchRunner(manifest: m, protocol: p, goldens: goldens, load: { a in
            loads.append(a.key)
            return GoldenModel(golden: goldens[a.bucket]!)
        }, clock: clock, gateReadings: { [thermalStateReading: 0] })
        let request = try XCTUnwrap(BenchRequest.from(arguments: ["App", "--benchmark", "--artifacts", "*/coreml-fp16-*,*/coreml-int8-native"]))
        let chosen = try request.select(m)
        XCTAssertEqual(Set(chosen.map { $0.key.split(separator: "/")[1] }), ["coreml-fp16-native", "coreml-fp16-explicit", "coreml-int8-native"])
        let run = try runner.run(chosen)
        let mine = run.results.filter { $0.artifact.bucket == first }
        XCTAssertEqual(mine.count, 3)
        for a in mine {
            XCTAssertNil(a.failure, a.artifact.key)
            XCTAssertEqual(a.rounds.count, 2, a.artifact.key)
            XCTAssertEqual(a.rounds.map(\.modelMs.count), [3, 3], "ceil(6 / 2) frames per round")
            XCTAssertEqual(a.gates.count, 2)
        }
        XCTAssertTrue(run.notes.contains { $0.contains("no golden for bucket") } || m.buckets.count == 1, "\(run.notes)")
        XCTAssertEqual(loads.count, 1 + 3 * 2, "one priming load of the first coreml artifact, then every round's")
        XCTAssertEqual(clock.slept.filter { $0 == 0.5 }.count, 6, "cool-down before each round")

        let bytes = try [UInt8](Data(contentsOf: try requireDist().appendingPathComponent("manifest.json")))
        let context = try RunContext.fromManifest(bytes, host: "iPhone (test)")
        let device = DeviceDescription.of(DeviceInfo(machineIdentifier: "iPhone17,3", model: "iPhone", systemName: "iOS",
                                                     systemVersion: "18.2", cores: 6, simulated: false,
                                                     runtimeVersions: ["coreml": "iOS 18.2"], appVersion: "0.1.0"))
        XCTAssertEqual(device.tier, "ios-iphone17-3")
        let data = try ResultsDocument.build(run, context: context, device: device)
        if let path = ProcessInfo.processInfo.environment["BACKDROP_RESULTS_SAMPLE"], !path.isEmpty {
            try data.write(to: URL(fileURLWithPath: path))
        }
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(doc["format"] as? String, "backdrop-results")
        XCTAssertEqual(doc["format_version"] as? String, "1.0")
        let r = try XCTUnwrap(doc["run"] as? [String: Any])
        XCTAssertTrue(r["git_commit"] is NSNull, "the schema requires git_commit, null outside a checkout")
        XCTAssertEqual(r["manifest_sha256"] as? String, sha256Hex(bytes))
        XCTAssertEqual(r["target"] as? String, m.target.name)
        XCTAssertTrue((r["started_at"] as? String ?? "").hasSuffix("Z"))
        let proto = try XCTUnwrap(r["protocol"] as? [String: Any])
        XCTAssertEqual(proto["name"] as? String, "custom")
        XCTAssertEqual(proto["min_frames"] as? Int, 6)
        let results = try XCTUnwrap(doc["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 3)
        for res in results {
            XCTAssertTrue(res["memory"] is NSNull)
            XCTAssertEqual(res["round_frames"] as? [Int], [3, 3])
            XCTAssertEqual((res["model_ms"] as? [Double])?.count, 6)
            XCTAssertEqual(res["load_ms"] as? [Double], [1.0, 1.0], "the fake clock: 1 ms per reading")
            XCTAssertEqual(res["flags"] as? [String], [], "the gate read the thermal state")
            let art = try XCTUnwrap(res["artifact"] as? [String: Any])
            XCTAssertEqual(art["peer"] as? Bool, false)
            XCTAssertNotNil(art["checkpoint_sha256"])
        }
        // Nothing measured is an error, not an empty document.
        let failed = BenchRun(startedAt: Date(), finishedAt: Date(), protocolUsed: p,
                              results: [ArtifactRun(artifact: chosen[0], rounds: [], gates: [], failure: "boom", runtimeVersions: [:])], notes: [])
        XCTAssertThrowsError(try ResultsDocument.build(failed, context: context, device: device)) { e in
            XCTAssertTrue("\(e)".contains("boom"), "\(e)")
        }
    }

    func testTheSelfTestPassesWithTheReferenceOutputsAndFailsWithoutThem() throws {
        let m = try loadManifest()
        let goldens = try goldenSequences(m)
        let bucket = m.buckets[0].name
        let g = try XCTUnwrap(goldens[bucket])
        for form in StateForm.allCases {
            let a = try m.artifact(bucket: bucket, format: "coreml", precision: "fp16", stateForm: form)
            let good = checkParity(manifest: m, artifact: a, golden: g, runner: GoldenModel(golden: g))
            XCTAssertTrue(good.passed, good.message)
            XCTAssertEqual(good.inputMismatches, 0)
            XCTAssertTrue(good.message.contains("passed"), good.message)
            let bad = checkParity(manifest: m, artifact: a, golden: g, runner: GoldenModel(golden: g, zeros: true))
            XCTAssertFalse(bad.passed, "an all-zero mask cannot pass: \(bad.message)")
        }
    }

    /// Each artifact is held to the floor its export verified (`details.parity.thresholds.min_iou`; int8's is
    /// below float's 0.99); an artifact without one (Core ML, not run on Linux) to 0.99; --min-iou overrides both.
    func testParityHoldsEachArtifactToTheFloorItsExportVerified() throws {
        let m = try loadManifest()
        for a in m.artifacts where a.verified == true {
            XCTAssertNotNil(a.parityMinIoU, "\(a.key): verified at export, so its manifest entry names its floor")
        }
        let data = try Data(contentsOf: try requireDist().appendingPathComponent("manifest.json"))
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        var artifacts = try XCTUnwrap(root["artifacts"] as? [[String: Any]])
        let i = try XCTUnwrap(artifacts.firstIndex { $0["format"] as? String == "coreml" && $0["precision"] as? String == "fp16" })
        func withFloor(_ floor: Any) throws -> Manifest {
            artifacts[i]["details"] = ["parity": ["min_iou": 0.93, "thresholds": ["min_iou": floor, "max_abs_error": 0.8]]]
            root["artifacts"] = artifacts
            return try Manifest.parse(try JSONSerialization.data(withJSONObject: root))
        }
        let floors = try withFloor(0.9)
        let a = floors.artifacts[i]
        XCTAssertEqual(a.parityMinIoU, 0.9)
        XCTAssertEqual(parityFloor(a), 0.9)
        XCTAssertEqual(parityFloor(a, override: 0.97), 0.97)
        let g = try XCTUnwrap(try goldenSequences(floors)[a.bucket])
        let good = checkParity(manifest: floors, artifact: a, golden: g, runner: GoldenModel(golden: g))
        XCTAssertEqual(good.required, 0.9)
        XCTAssertTrue(good.passed, good.message)
        XCTAssertEqual(checkParity(manifest: floors, artifact: a, golden: g, runner: GoldenModel(golden: g), minIoU: 0.97).required, 0.97)
        XCTAssertEqual(parityFloor(try loadManifest().artifacts[i]), minParityIoU, "no parity in its entry: 0.99")
        for bad in [1.5, 0.0] as [Any] {
            XCTAssertThrowsError(try withFloor(bad)) { e in XCTAssertTrue("\(e)".contains("min_iou"), "\(e)") }
        }
        XCTAssertNil(try BenchRequest.from(arguments: ["--benchmark"])?.minIoU, "no --min-iou: each artifact's own floor")
    }

    func testLaunchArguments() throws {
        XCTAssertNil(try BenchRequest.from(arguments: ["App"]))
        let r = try XCTUnwrap(BenchRequest.from(arguments: ["App", "--benchmark", "--protocol", "mlperf", "--rounds=3", "--min-iou", "0.98",
                                                            "--out", "run1.json", "--gate-timeout-s", "120"]))
        XCTAssertEqual(r.protocolUsed.name, "custom")
        XCTAssertEqual(r.protocolUsed.rounds, 3)
        XCTAssertEqual(r.protocolUsed.minFrames, 1024)
        XCTAssertEqual(r.protocolUsed.gate.timeoutS, 120)
        XCTAssertEqual(r.minIoU, 0.98)
        XCTAssertEqual(r.out, "run1.json")
        XCTAssertEqual(try BenchRequest.from(arguments: ["--benchmark"])?.protocolUsed, BenchProtocol.quick)
        for (bad, what) in [(["--benchmark", "--frobs", "1"], "unknown"), (["--benchmark", "--rounds", "x"], "not an integer"),
                            (["--benchmark", "--out", "../x.json"], "plain file name"), (["--benchmark", "--rounds"], "needs a value"),
                            (["--benchmark", "--protocol", "slow"], "unknown protocol"), (["--benchmark", "--rounds", "0"], "rounds >= 1")] {
            XCTAssertThrowsError(try BenchRequest.from(arguments: bad)) { e in XCTAssertTrue("\(e)".contains(what), "\(bad): \(e)") }
        }
        XCTAssertTrue(globMatch("*/coreml-*-native", "landscape_16x9/coreml-fp16-native"))
        XCTAssertFalse(globMatch("*/coreml-*-native", "landscape_16x9/coreml-fp16-explicit"))
        XCTAssertTrue(globMatch("a?c", "abc"))
    }

    func testTheGateAndTheSchedule() throws {
        let gate = try Gate(maxTempC: 45, timeoutS: 3, pollS: 1)
        XCTAssertEqual(gateBlockers([thermalStateReading: 1], gate: gate), [])
        XCTAssertEqual(gateBlockers([thermalStateReading: 2], gate: gate).count, 1)
        XCTAssertEqual(gateBlockers(["temp_c:cpu": 50, "cap_mhz:cpu0": 1000, "max_mhz:cpu0": 2000], gate: gate).count, 2)
        var reads = 0
        let clock = FakeClock()
        let hot = waitForGate({ reads += 1; return [thermalStateReading: 3] }, gate: gate, round: 0, clock: clock)
        XCTAssertTrue(hot.timedOut)
        XCTAssertGreaterThan(reads, 1)
        let cool = waitForGate({ [thermalStateReading: 0] }, gate: gate, round: 1, clock: clock)
        XCTAssertFalse(cool.timedOut)
        let order = benchSchedule([["a", "b", "c"]], rounds: 3).map { "\($0.round)\($0.member)" }
        XCTAssertEqual(order, ["0a", "0b", "0c", "1b", "1c", "1a", "2c", "2a", "2b"])
    }

    func testHelpersMatchPython() {
        // Python: round(0.03125, 4), round(1.00005, 4), round(2.675, 4), round(0.00015, 4), round(123.45675, 4)
        XCTAssertEqual([0.03125, 1.00005, 2.675, 0.00015, 123.45675].map { pythonRound($0, 4) }, [0.0312, 1.0001, 2.675, 0.0001, 123.4567])
        XCTAssertEqual(utcTimestamp(Date(timeIntervalSince1970: 1_800_000_000.25)), "2027-01-15T08:00:00.250000Z")
        XCTAssertEqual(sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // numpy: np.percentile(x, 50), np.percentile(x, 90), np.mean(x) of the same samples.
        let x = [3.5, 1.25, 9.0, 2.0, 7.75, 4.0, 4.5, 0.5, 11.0, 6.25, 3.0] + (0..<140).map { 0.1 * Double($0) }
        let s = LatencySummary(x)!
        XCTAssertEqual([s.p50, s.p90, s.mean], [6.7, 12.4, 6.793046357615894])
        let y = LatencySummary([3.5, 1.25, 9.0, 2.0, 7.75])!
        XCTAssertEqual([y.p50, y.p90, y.mean], [3.5, 8.5, 4.7])
        XCTAssertEqual(slug("iPhone17,3"), "iphone17-3")
        XCTAssertNil(LatencySummary([]))
    }
}
