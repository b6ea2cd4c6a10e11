// The bench protocol of `backdrop bench` (backdrop/bench/protocol.py, run.py; docs/benchmarking.md
// "The protocol") for the app's benchmark mode, with the clock, the model call and the device's
// readings injected, so the app supplies only "load this artifact" and "run this feed"
// (`ModelRunner`) and the Linux tests drive it with a fake clock. android_demo/core's
// BenchProtocol.kt is the Kotlin twin; the rules are the same:
//
//   priming    one untimed one-frame round of the first artifact of each format;
//   rounds     per bucket, every artifact `rounds` times, the order rotated by one place each
//              round; before each round `cooldown_s` idle, then the thermal gate;
//   a round    load (timed), `warmup` untimed frames, then the bucket's golden camera sequence in
//              order, wrapping round, the state carried and reset where the golden resets it,
//              until the round has ceil(min_frames / rounds) frames AND min_seconds / rounds
//              seconds of end-to-end time; per frame `model` (the model call) and `e2e` (camera
//              buffer -> SegmentationStream.prepare -> model -> complete, the mask at camera size).
//
// Also here: the golden parity check of the app's self-test (scripts/run_from_manifest.py:
// per-frame IoU of the masks thresholded at the manifest's threshold, at least 0.99), and the
// benchmark mode's request from the app's launch arguments.
import Foundation

/// A protocol, request or golden that cannot be used as given.
public struct BenchError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

// MARK: - The protocol (protocol.py)

/// protocol.py Gate: before each round, wait until nothing reads hot, up to `timeoutS`.
public struct Gate: Equatable, Sendable {
    public let maxTempC: Double
    public let timeoutS: Double
    public let pollS: Double

    public init(maxTempC: Double = 45, timeoutS: Double = 60, pollS: Double = 1) throws {
        if timeoutS < 0 || !(pollS > 0) || !maxTempC.isFinite {
            throw BenchError("a gate needs timeout_s >= 0, poll_s > 0 and a finite max_temp_c; got \(maxTempC), \(timeoutS), \(pollS)")
        }
        self.maxTempC = maxTempC
        self.timeoutS = timeoutS
        self.pollS = pollS
    }
}

/// One round of one artifact (device_tests/base.py BenchPlan).
public struct RoundPlan: Equatable, Sendable {
    public let warmup: Int
    public let minFrames: Int
    public let minSeconds: Double
}

/// protocol.py Protocol (the app always times end to end).
public struct BenchProtocol: Equatable, Sendable {
    public let name: String
    public let warmup: Int
    public let minFrames: Int
    public let minSeconds: Double
    public let rounds: Int
    public let cooldownS: Double
    public let gate: Gate
    public let threads: Int

    public init(name: String = "quick", warmup: Int = 3, minFrames: Int = 100, minSeconds: Double = 1, rounds: Int = 5,
                cooldownS: Double = 0, gate: Gate? = nil, threads: Int = 0) throws {
        if warmup < 0 || minFrames < 1 || !(minSeconds >= 0) || rounds < 1 || !(cooldownS >= 0) {
            throw BenchError("a protocol needs warmup >= 0, min_frames >= 1, min_seconds >= 0, rounds >= 1 and cooldown_s >= 0; "
                                + "got warmup=\(warmup), min_frames=\(minFrames), min_seconds=\(minSeconds), rounds=\(rounds), "
                                + "cooldown_s=\(cooldownS)")
        }
        if threads < 0 { throw BenchError("threads must be >= 0 (0: the runtime's default); got \(threads)") }
        self.name = name
        self.warmup = warmup
        self.minFrames = minFrames
        self.minSeconds = minSeconds
        self.rounds = rounds
        self.cooldownS = cooldownS
        self.gate = try gate ?? Gate()
        self.threads = threads
    }

    /// protocol.py round_plan: one round's share of the frames and seconds.
    public var roundPlan: RoundPlan { RoundPlan(warmup: warmup, minFrames: (minFrames + rounds - 1) / rounds, minSeconds: minSeconds / Double(rounds)) }

    public static let frames = "each bucket's golden sequence bundled with the app (camera buffers as an app receives them), "
        + "in order, wrapping round, the state carried and reset where the golden resets it"

    // swiftlint:disable force_try
    public static let quick = try! BenchProtocol()
    /// MLPerf Mobile's single-stream rule: >= 1024 queries and >= 60 s per result.
    public static let mlperf = try! BenchProtocol(name: "mlperf", warmup: 10, minFrames: 1024, minSeconds: 60, rounds: 8, cooldownS: 10,
                                                  gate: try! Gate(maxTempC: 45, timeoutS: 300))
    // swiftlint:enable force_try

    /// protocol.py protocol_named: the protocol `name` with the given fields replaced (nil keeps
    /// a field); a replacement that changes a value renames it "custom".
    public static func named(_ name: String, warmup: Int? = nil, minFrames: Int? = nil, minSeconds: Double? = nil,
                             rounds: Int? = nil, cooldownS: Double? = nil, maxTempC: Double? = nil, gateTimeoutS: Double? = nil,
                             threads: Int? = nil) throws -> BenchProtocol {
        let known = ["quick": quick, "mlperf": mlperf]
        guard let base = known[name] else { throw BenchError("unknown protocol \"\(name)\"; known: quick, mlperf") }
        let p = try BenchProtocol(name: base.name, warmup: warmup ?? base.warmup, minFrames: minFrames ?? base.minFrames,
                                  minSeconds: minSeconds ?? base.minSeconds, rounds: rounds ?? base.rounds,
                                  cooldownS: cooldownS ?? base.cooldownS,
                                  gate: try Gate(maxTempC: maxTempC ?? base.gate.maxTempC, timeoutS: gateTimeoutS ?? base.gate.timeoutS,
                                                 pollS: base.gate.pollS),
                                  threads: threads ?? base.threads)
        if p == base { return base }
        return try BenchProtocol(name: "custom", warmup: p.warmup, minFrames: p.minFrames, minSeconds: p.minSeconds, rounds: p.rounds,
                                 cooldownS: p.cooldownS, gate: p.gate, threads: p.threads)
    }
}

// MARK: - What the app injects

/// Time as the bench sees it: `SystemBenchClock` on a phone, a fake in tests.
public protocol BenchClock {
    /// A monotonic clock in nanoseconds.
    func nanoTime() -> UInt64
    /// Wall-clock time (the document's started_at / finished_at).
    func now() -> Date
    func sleep(seconds: Double)
}

/// The process's monotonic clock and `Thread.sleep`.
public struct SystemBenchClock: BenchClock {
    public init() {}
    public func nanoTime() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) { Thread.sleep(forTimeInterval: seconds) }
}

/// The model's outputs for one feed: `mask` and, explicit state form only, `next_mask`.
public struct ModelOutput {
    public let mask: TensorValues
    public let nextMask: TensorValues?
    public init(mask: TensorValues, nextMask: TensorValues? = nil) {
        self.mask = mask
        self.nextMask = nextMask
    }
}

/// One artifact loaded into its runtime (BackdropKitCoreML's `CoreMLRunner`, or the app's
/// ExecuTorch code). `run` is the model call alone: the feed's `input` and, per its state form,
/// `prevMask` or `resetInput`, bound by the manifest's names.
public protocol ModelRunner: AnyObject {
    /// Runtime name -> version, for the document (e.g. "coreml" -> "iOS 18.2").
    var runtimeVersions: [String: String] { get }
    /// Threads the runtime runs with; 0 when it does not say (Core ML).
    var threads: Int { get }
    func run(_ feed: ModelFeed) throws -> ModelOutput
    func close()
}

/// The process's resident memory, or nil where the platform does not say.
public protocol MemoryProbe {
    /// What the numbers are, e.g. "phys_footprint" (iOS task_vm_info).
    var kind: String { get }
    func residentMB() -> Double?
    /// Starts a new peak; false when the platform cannot.
    func resetPeak() -> Bool
    func peakMB() -> Double?
}

// MARK: - Rounds, gates, schedule

/// What one round measured (device_tests/base.py RoundTimings), ms per timed frame in order.
public struct RoundTimings {
    public let loadMs: Double
    public let modelMs: [Double]
    public let e2eMs: [Double]
    public let threads: Int
    public let cores: [Int: Int]
    public let peakRssMB: Double?
    public let baselineRssMB: Double?
    public let memoryKind: String

    public init(loadMs: Double, modelMs: [Double], e2eMs: [Double], threads: Int = 0, cores: [Int: Int] = [:],
                peakRssMB: Double? = nil, baselineRssMB: Double? = nil, memoryKind: String = "") {
        self.loadMs = loadMs
        self.modelMs = modelMs
        self.e2eMs = e2eMs
        self.threads = threads
        self.cores = cores
        self.peakRssMB = peakRssMB
        self.baselineRssMB = baselineRssMB
        self.memoryKind = memoryKind
    }
}

/// protocol.py GateCheck: what the gate saw before one round.
public struct GateCheck: Equatable {
    public let round: Int
    public let waitedS: Double
    public let timedOut: Bool
    public let readings: [String: Double]

    public init(round: Int, waitedS: Double, timedOut: Bool, readings: [String: Double]) {
        self.round = round
        self.waitedS = waitedS
        self.timedOut = timedOut
        self.readings = readings
    }
}

/// iOS says how hot the phone is only as `ProcessInfo.thermalState` (0 nominal, 1 fair, 2
/// serious, 3 critical): the app reads it as `thermal_state:ios`, and a round waits while it is
/// serious or worse (Linux and Android devices read temp_c:<zone> and CPU clock caps instead).
public let thermalStateReading = "thermal_state:ios"

/// protocol.py gate_blockers (plus `thermal_state:ios` >= 2): why a round may not start yet.
public func gateBlockers(_ readings: [String: Double], gate: Gate) -> [String] {
    var out: [String] = []
    for (k, v) in readings.sorted(by: { $0.key < $1.key }) {
        if k.hasPrefix("temp_c:") && v >= gate.maxTempC { out.append("\(k.dropFirst(7)) \(String(format: "%.1f", v)) C") }
        if k == thermalStateReading && v >= 2 { out.append("thermal state \(Int(v)) (serious or critical)") }
        if k.hasPrefix("cap_mhz:"), let top = readings["max_mhz:\(k.dropFirst(8))"], v < top * 0.999 {
            out.append("\(k.dropFirst(8)) capped at \(String(format: "%.0f", v)) of \(String(format: "%.0f", top)) MHz")
        }
    }
    return out
}

/// protocol.py wait_for_gate: poll `read` until nothing blocks or `gate.timeoutS` has passed.
public func waitForGate(_ read: () -> [String: Double], gate: Gate, round: Int, clock: BenchClock) -> GateCheck {
    let start = clock.nanoTime()
    while true {
        let readings = read()
        let waited = Double(clock.nanoTime() - start) / 1e9
        if gateBlockers(readings, gate: gate).isEmpty { return GateCheck(round: round, waitedS: waited, timedOut: false, readings: readings) }
        if waited >= gate.timeoutS { return GateCheck(round: round, waitedS: waited, timedOut: true, readings: readings) }
        let s = min(gate.pollS, max(gate.timeoutS - waited, 0))
        clock.sleep(seconds: s == 0 ? gate.pollS : s)
    }
}

/// run.py's order: group by group (a bucket's artifacts), round by round, the members rotated
/// by one place each round, so every member takes every place equally often.
public func benchSchedule<T>(_ groups: [[T]], rounds: Int) -> [(round: Int, member: T)] {
    var out: [(Int, T)] = []
    for members in groups where !members.isEmpty {
        for r in 0..<rounds {
            let s = r % members.count
            for m in Array(members[s...]) + Array(members[..<s]) { out.append((r, m)) }
        }
    }
    return out
}

/// One artifact's rounds, gate checks and, when a round failed, why (later rounds are skipped).
public struct ArtifactRun {
    public let artifact: Artifact
    public let rounds: [RoundTimings]
    public let gates: [GateCheck]
    public let failure: String?
    public let runtimeVersions: [String: String]

    public init(artifact: Artifact, rounds: [RoundTimings], gates: [GateCheck], failure: String?, runtimeVersions: [String: String]) {
        self.artifact = artifact
        self.rounds = rounds
        self.gates = gates
        self.failure = failure
        self.runtimeVersions = runtimeVersions
    }
}

/// A whole bench: what `ResultsDocument.build` writes.
public struct BenchRun {
    public let startedAt: Date
    public let finishedAt: Date
    public let protocolUsed: BenchProtocol
    public let results: [ArtifactRun]
    public let notes: [String]

    public init(startedAt: Date, finishedAt: Date, protocolUsed: BenchProtocol, results: [ArtifactRun], notes: [String]) {
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.protocolUsed = protocolUsed
        self.results = results
        self.notes = notes
    }
}

// MARK: - The golden sequence the bench and the self-test run

/// One bucket's golden sequence (export/goldens.py): packed camera buffers in order, the frames
/// before which the state is reset, the reference outputs.
public struct GoldenSequence {
    public let bucket: String
    public let width: Int
    public let height: Int
    /// `nv12` (iOS) or `nv21` (Android).
    public let cameraFormat: String
    public let buffers: [[UInt8]]
    public let resets: [Bool]
    /// float32 (3 * Hb * Wb) per frame: the model input the reference made of each buffer.
    public let frames: [[Float]]
    /// float32 (Hb * Wb) per frame: the reference probability (the state after each frame).
    public let expectedMasks: [[Float]]
    /// float32 (H * W) per frame: that probability mapped back to the camera frame.
    public let expectedCameraMasks: [[Float]]
    public var count: Int { buffers.count }

    /// Frame `index` as the camera delivered it.
    public func frame(_ index: Int) throws -> YUV420Frame {
        switch cameraFormat {
        case "nv12": return try YUV420Frame.nv12(buffer: buffers[index], width: width, height: height)
        case "nv21": return try YUV420Frame.nv21(buffer: buffers[index], width: width, height: height)
        default: throw BenchError("golden \(bucket): camera_format \(cameraFormat) is not nv12 or nv21")
        }
    }

    /// Reads a golden .npz.
    /// - Throws: `BenchError` naming the file and what is missing or wrong.
    public static func load(contentsOf url: URL) throws -> GoldenSequence {
        let z: [String: NpyArray]
        do {
            z = try Npy.readNpz(contentsOf: url)
        } catch let e as NpyError {
            throw BenchError("golden \(url.path): \(e.message)")
        }
        func need(_ key: String) throws -> NpyArray {
            guard let a = z[key] else { throw BenchError("golden \(url.path) has no \(key); is it a backdrop golden (export/goldens.py)?") }
            return a
        }
        func rows(_ a: NpyArray) throws -> [[Float]] { try (0..<(a.shape.first ?? 0)).map { try a.row($0).floats() } }
        do {
            let schema = try need("schema").string()
            if schema != "backdrop-golden/1" { throw BenchError("golden \(url.path): schema \(schema) is not backdrop-golden/1") }
            let size = try need("camera_size").ints()
            let buffers = try need("camera_buffers")
            let g = GoldenSequence(bucket: try need("bucket_name").string(), width: size[1], height: size[0],
                                   cameraFormat: try need("camera_format").string(),
                                   buffers: try (0..<(buffers.shape.first ?? 0)).map { try buffers.row($0).bytes() },
                                   resets: try need("resets").booleans(), frames: try rows(need("frames")),
                                   expectedMasks: try rows(need("expected_masks")),
                                   expectedCameraMasks: try rows(need("expected_camera_masks")))
            if g.resets.count != g.count || g.frames.count != g.count || g.expectedCameraMasks.count != g.count || g.count == 0 {
                throw BenchError("golden \(url.path): its arrays do not have one entry per frame")
            }
            return g
        } catch let e as NpyError {
            throw BenchError("golden \(url.path): \(e.message)")
        }
    }
}

// MARK: - The runner

/// The bench protocol over `goldens` (bucket name -> sequence). `load` puts an artifact into its
/// runtime; it and `ModelRunner.run` are the only calls into the app's runtimes.
public final class BenchRunner {
    public let manifest: Manifest
    public let protocolUsed: BenchProtocol
    public let goldens: [String: GoldenSequence]
    let load: (Artifact) throws -> ModelRunner
    let clock: BenchClock
    let gateReadings: () -> [String: Double]
    let memory: MemoryProbe?
    /// Called after each turn: (artifact key, turns done, turns in all).
    let progress: (String, Int, Int) -> Void

    public init(manifest: Manifest, protocol p: BenchProtocol, goldens: [String: GoldenSequence],
                load: @escaping (Artifact) throws -> ModelRunner, clock: BenchClock = SystemBenchClock(),
                gateReadings: @escaping () -> [String: Double] = { [:] }, memory: MemoryProbe? = nil,
                progress: @escaping (String, Int, Int) -> Void = { _, _, _ in }) {
        self.manifest = manifest
        self.protocolUsed = p
        self.goldens = goldens
        self.load = load
        self.clock = clock
        self.gateReadings = gateReadings
        self.memory = memory
        self.progress = progress
    }

    private final class Member {
        let artifact: Artifact
        var rounds: [RoundTimings] = []
        var gates: [GateCheck] = []
        var failure: String?
        var versions: [String: String] = [:]
        init(_ a: Artifact) { artifact = a }
    }

    /// Benches `artifacts` (those without a golden of their bucket are skipped, with a note).
    /// - Throws: `BenchError` when there is nothing to bench; a failing round is recorded, not thrown.
    public func run(_ artifacts: [Artifact]) throws -> BenchRun {
        if artifacts.isEmpty { throw BenchError("no artifact to bench") }
        var notes: [String] = []
        var order: [String] = []
        var groups: [String: [Member]] = [:]
        for a in artifacts {
            if goldens[a.bucket] == nil {
                notes.append("skipped \(a.key): no golden for bucket \(a.bucket) in the app (make ios-demo bundles one bucket's)")
                continue
            }
            if groups[a.bucket] == nil { order.append(a.bucket) }
            groups[a.bucket, default: []].append(Member(a))
        }
        if groups.isEmpty {
            throw BenchError("none of \(artifacts.map(\.key).joined(separator: ", ")) has a golden to run: " + notes.joined(separator: "; "))
        }
        let members = order.flatMap { groups[$0]! }
        prime(members)
        let plan = protocolUsed.roundPlan
        let turns = benchSchedule(order.map { groups[$0]! }, rounds: protocolUsed.rounds)
        let started = clock.now()
        for (done, turn) in turns.enumerated() {
            let m = turn.member
            if m.failure == nil {
                if protocolUsed.cooldownS > 0 { clock.sleep(seconds: protocolUsed.cooldownS) }
                m.gates.append(waitForGate(gateReadings, gate: protocolUsed.gate, round: turn.round, clock: clock))
                do {
                    m.rounds.append(try round(m.artifact, golden: goldens[m.artifact.bucket]!, plan: plan) { m.versions = $0 })
                } catch {
                    m.failure = "\(type(of: error)): \(error)"
                }
            }
            progress(m.artifact.key, done + 1, turns.count)
        }
        let finished = clock.now()
        return BenchRun(startedAt: started, finishedAt: finished, protocolUsed: protocolUsed,
                        results: members.map { ArtifactRun(artifact: $0.artifact, rounds: $0.rounds, gates: $0.gates, failure: $0.failure,
                                                           runtimeVersions: $0.versions) },
                        notes: notes)
    }

    /// run.py _prime: one untimed one-frame round of the first artifact of each format; failures are left to the timed rounds.
    private func prime(_ members: [Member]) {
        var seen = Set<String>()
        for m in members where seen.insert(m.artifact.format).inserted {
            _ = try? round(m.artifact, golden: goldens[m.artifact.bucket]!, plan: RoundPlan(warmup: 0, minFrames: 1, minSeconds: 0)) { _ in }
        }
    }

    /// One round (host.py python_bench_round).
    public func round(_ artifact: Artifact, golden: GoldenSequence, plan: RoundPlan,
                      versions: ([String: String]) -> Void = { _ in }) throws -> RoundTimings {
        let baseline = memory?.residentMB()
        let peakKnown = memory?.resetPeak() ?? false
        let t0 = clock.nanoTime()
        let runner = try load(artifact)
        let loadMs = Double(clock.nanoTime() - t0) / 1e6
        defer { runner.close() }
        versions(runner.runtimeVersions)
        let stream = SegmentationStream(manifest: manifest) { _ in artifact }
        for _ in 0..<plan.warmup {
            stream.reset()
            let feed = try stream.prepare(try golden.frame(0))
            let out = try runner.run(feed)
            _ = try stream.complete(feed, mask: out.mask, nextMask: out.nextMask)
        }
        stream.reset()
        var model: [Double] = []
        var e2e: [Double] = []
        var timedMs = 0.0
        var i = 0
        while model.count < plan.minFrames || timedMs < plan.minSeconds * 1e3 {
            let k = i % golden.count
            if k == 0 || golden.resets[k] { stream.sceneCut() }
            let tFrame = clock.nanoTime()
            let feed = try stream.prepare(try golden.frame(k))
            let tModel = clock.nanoTime()
            let out = try runner.run(feed)
            let tDone = clock.nanoTime()
            _ = try stream.complete(feed, mask: out.mask, nextMask: out.nextMask)
            let tEnd = clock.nanoTime()
            model.append(Double(tDone - tModel) / 1e6)
            e2e.append(Double(tEnd - tFrame) / 1e6)
            timedMs += e2e[e2e.count - 1]
            i += 1
        }
        let peak = peakKnown ? memory?.peakMB() : nil
        return RoundTimings(loadMs: loadMs, modelMs: model, e2eMs: e2e, threads: runner.threads, cores: [:], peakRssMB: peak,
                            baselineRssMB: peak != nil ? baseline : nil, memoryKind: peak != nil ? memory!.kind : "")
    }
}

// MARK: - Parity against the golden (scripts/run_from_manifest.py)

/// The floor for an artifact whose manifest entry names none (scripts/run_from_manifest.py's 0.99); an
/// artifact the export verified is held to its own `details.parity.thresholds.min_iou` (`Artifact.parityMinIoU`).
public let minParityIoU = 0.99

/// What `checkParity` holds `artifact` to: `override` (the --min-iou argument) when given, else the floor
/// the export verified it to, else `minParityIoU`.
public func parityFloor(_ artifact: Artifact, override: Double? = nil) -> Double {
    override ?? artifact.parityMinIoU ?? minParityIoU
}

/// One artifact over one golden: the worst frame's IoU, and whether the preprocessing gave the
/// golden's model inputs bit for bit (in the artifact's dtype).
public struct ParityResult {
    public let key: String
    public let frames: Int
    public let minIoU: Double
    public let worstFrame: Int
    public let threshold: Double
    public let required: Double
    /// Frames whose model input differed from the golden's (converted to the artifact's dtype).
    public let inputMismatches: Int
    public let error: String?

    public var passed: Bool { error == nil && inputMismatches == 0 && minIoU >= required }

    /// One line for the screen, the log and the document's notes.
    public var message: String {
        if let e = error { return "parity \(key): FAILED, \(e)" }
        if inputMismatches > 0 { return "parity \(key): FAILED, \(inputMismatches) of \(frames) model inputs differ from the golden's" }
        if passed {
            return "parity \(key): passed, \(frames) frames, inputs bit-exact, min IoU \(String(format: "%.4f", minIoU)) >= \(required) "
                + "(masks at threshold \(threshold))"
        }
        return "parity \(key): FAILED, frame \(worstFrame) IoU \(String(format: "%.4f", minIoU)) < \(required) of \(frames) frames"
    }
}

/// IoU of two binary masks (1.0 when both are empty, as run_from_manifest.py).
public func iou(_ a: [UInt8], _ b: [UInt8]) throws -> Double {
    if a.count != b.count { throw BenchError("IoU of masks of \(a.count) and \(b.count) values") }
    var inter = 0, union = 0
    for i in a.indices {
        let x = a[i] != 0, y = b[i] != 0
        if x && y { inter += 1 }
        if x || y { union += 1 }
    }
    return union == 0 ? 1 : Double(inter) / Double(union)
}

/// Runs `artifact` over `golden` through `runner` and BackdropKit, the state reset where the
/// golden resets it; checks every model input against the golden's (converted to the artifact's
/// dtype, bit for bit) and compares each camera-size mask with the golden's, both thresholded.
public func checkParity(manifest: Manifest, artifact: Artifact, golden: GoldenSequence, runner: ModelRunner,
                        minIoU override: Double? = nil) -> ParityResult {
    let minIoU = parityFloor(artifact, override: override)
    let threshold = Float(manifest.threshold)
    let stream = SegmentationStream(manifest: manifest) { _ in artifact }
    var worst = Double.infinity, worstFrame = 0, mismatches = 0
    do {
        let dtype = try artifact.frameInput.elementType(of: artifact.key)
        for k in 0..<golden.count {
            if golden.resets[k] { stream.sceneCut() }
            let feed = try stream.prepare(try golden.frame(k))
            if !feed.input.bitPatternsEqual(TensorValues.from(golden.frames[k], as: dtype)) { mismatches += 1 }
            let out = try runner.run(feed)
            let mask = try stream.complete(feed, mask: out.mask, nextMask: out.nextMask)
            let score = try iou(try binaryMask(mask, threshold: threshold), try binaryMask(golden.expectedCameraMasks[k], threshold: threshold))
            if score < worst {
                worst = score
                worstFrame = k
            }
        }
    } catch {
        return ParityResult(key: artifact.key, frames: golden.count, minIoU: 0, worstFrame: 0, threshold: manifest.threshold,
                            required: minIoU, inputMismatches: mismatches, error: "\(type(of: error)): \(error)")
    }
    return ParityResult(key: artifact.key, frames: golden.count, minIoU: worst, worstFrame: worstFrame, threshold: manifest.threshold,
                        required: minIoU, inputMismatches: mismatches, error: nil)
}

// MARK: - The benchmark mode's request

/// What `xcrun devicectl device process launch --device ID ai.backdrop.demo -- --benchmark ...`
/// asks for: the arguments after `--benchmark`, each `--name value` or `--name=value` (names
/// with `-` or `_`): artifacts (comma-separated keys or globs with `*`, default every bundled
/// artifact), protocol (quick | mlperf), rounds, warmup, min-frames, min-seconds, cooldown-s,
/// max-temp-c, gate-timeout-s, threads, min-iou, out (a file name in the app's Documents).
public struct BenchRequest: Equatable {
    public let artifacts: [String]
    public let protocolUsed: BenchProtocol
    /// --min-iou; nil: each artifact is held to its own floor from the manifest (`parityFloor`).
    public let minIoU: Double?
    public let out: String

    public static let known = ["artifacts", "protocol", "rounds", "warmup", "min_frames", "min_seconds", "cooldown_s", "max_temp_c",
                               "gate_timeout_s", "threads", "min_iou", "out"]

    /// The request in `arguments` (the process's arguments), or nil without `--benchmark`.
    /// - Throws: `BenchError` naming the argument that does not parse or is unknown.
    public static func from(arguments: [String]) throws -> BenchRequest? {
        guard let at = arguments.firstIndex(of: "--benchmark") else { return nil }
        var values: [String: String] = [:]
        var i = at + 1
        while i < arguments.count {
            let a = arguments[i]
            guard a.hasPrefix("--") else { throw BenchError("unexpected argument \"\(a)\" after --benchmark (use --name value)") }
            var name = String(a.dropFirst(2))
            var value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
                i += 1
            } else {
                guard i + 1 < arguments.count else { throw BenchError("--\(name) needs a value") }
                value = arguments[i + 1]
                i += 2
            }
            values[name.replacingOccurrences(of: "-", with: "_")] = value
        }
        return try from(values: values)
    }

    /// The request from name -> value (names as in `known`).
    public static func from(values: [String: String]) throws -> BenchRequest {
        let unknown = values.keys.filter { !known.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw BenchError("unknown benchmark argument \(unknown.map { "--" + $0.replacingOccurrences(of: "_", with: "-") }.joined(separator: ", ")); "
                                + "known: \(known.map { "--" + $0.replacingOccurrences(of: "_", with: "-") }.joined(separator: ", "))")
        }
        func int(_ n: String) throws -> Int? {
            guard let v = values[n] else { return nil }
            guard let i = Int(v.trimmingCharacters(in: .whitespaces)) else { throw BenchError("--\(n) \"\(v)\" is not an integer") }
            return i
        }
        func num(_ n: String) throws -> Double? {
            guard let v = values[n] else { return nil }
            guard let d = Double(v.trimmingCharacters(in: .whitespaces)), d.isFinite else { throw BenchError("--\(n) \"\(v)\" is not a number") }
            return d
        }
        let p = try BenchProtocol.named(values["protocol"] ?? "quick", warmup: int("warmup"), minFrames: int("min_frames"),
                                        minSeconds: num("min_seconds"), rounds: int("rounds"), cooldownS: num("cooldown_s"),
                                        maxTempC: num("max_temp_c"), gateTimeoutS: num("gate_timeout_s"), threads: int("threads"))
        let minIoU = try num("min_iou")
        if let m = minIoU, !(m > 0 && m <= 1) { throw BenchError("--min-iou \(m) is not within (0, 1]") }
        let out = values["out"] ?? "backdrop-results.json"
        if out.isEmpty || out.contains("/") || out.hasPrefix(".") { throw BenchError("--out \"\(out)\" must be a plain file name") }
        let keys = (values["artifacts"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return BenchRequest(artifacts: keys, protocolUsed: p, minIoU: minIoU, out: out)
    }

    /// The manifest's artifacts this request names, in manifest order.
    /// - Throws: `BenchError` for a pattern that matches nothing.
    public func select(_ manifest: Manifest) throws -> [Artifact] {
        if artifacts.isEmpty { return manifest.artifacts }
        let unmatched = artifacts.filter { p in !manifest.artifacts.contains { globMatch(p, $0.key) || globMatch(p, $0.path) } }
        if !unmatched.isEmpty {
            throw BenchError("artifacts \(unmatched.joined(separator: ", ")) match nothing in the app's manifest; it has "
                                + manifest.artifacts.map(\.key).joined(separator: ", "))
        }
        return manifest.artifacts.filter { a in artifacts.contains { globMatch($0, a.key) || globMatch($0, a.path) } }
    }
}

/// Shell-style `*` and `?` over the whole text (fnmatch as run.py's --artifacts, without [...] sets).
public func globMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern), t = Array(text)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
            pi += 1
            ti += 1
        } else if pi < p.count && p[pi] == "*" {
            star = pi
            mark = ti
            pi += 1
        } else if star >= 0 {
            pi = star + 1
            mark += 1
            ti = mark
        } else {
            return false
        }
    }
    while pi < p.count && p[pi] == "*" { pi += 1 }
    return pi == p.count
}
