// The results document of a benchmark run (format "backdrop-results" 1.0, the schema
// backdrop/schemas/results.schema.json, docs/benchmarking.md) as the app's benchmark mode writes it
// into its Documents for `xcrun devicectl device copy from` and `backdrop results import`, built
// from what BenchRunner measured. android_demo/core's Results.kt is the Kotlin twin (field for
// field run.py's document: samples rounded to 4 decimals, round_frames, gate checks, flags).
//
// The document carries raw samples only; `backdrop results import` recomputes every statistic.
// `LatencySummary` is for the app's screen: numpy's linear percentiles and pairwise-summed mean,
// without stats.py's bootstrap interval of the median (Results.kt reproduces that too; this
// port does not).
import Foundation

/// A results document that cannot be written as asked (a missing field, a bad sample).
public struct ResultsError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

public let resultsFormat = "backdrop-results"
public let resultsFormatVersion = "1.0"
/// What this app calls itself in `run.source`.
public let benchSource = "ios_demo benchmark mode"

/// Python's round(v, digits) (round half to even on the exact binary value), as run.py rounds
/// every sample it writes: printf's `%.Nf` rounds the exact value the same way.
public func pythonRound(_ v: Double, _ digits: Int) -> Double {
    Double(String(format: "%.\(digits)f", v)) ?? v
}

/// UTC ISO 8601 with microseconds, as run.py writes started_at / finished_at.
public func utcTimestamp(_ date: Date) -> String {
    let seconds = date.timeIntervalSince1970
    var whole = floor(seconds)
    var micros = Int(((seconds - whole) * 1e6).rounded())
    if micros >= 1_000_000 {
        whole += 1
        micros -= 1_000_000
    }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
    return f.string(from: Date(timeIntervalSince1970: whole)) + String(format: ".%06dZ", micros)
}

/// adb_device.py _slug: lower case, runs of anything but [a-z0-9] to one "-", trimmed.
public func slug(_ text: String) -> String {
    var out = ""
    var dash = false
    for ch in text.lowercased().unicodeScalars {
        if ("a"..."z").contains(ch) || ("0"..."9").contains(ch) {
            if dash && !out.isEmpty { out += "-" }
            out.unicodeScalars.append(ch)
            dash = false
        } else {
            dash = true
        }
    }
    return out.isEmpty ? "unknown" : out
}

// MARK: - The device

/// What the app knows about the phone, as plain values (the app fills it from `uname`'s machine
/// (`hw.machine`, e.g. "iPhone17,3"), UIDevice and its bundle; nothing here reads iOS APIs).
public struct DeviceInfo {
    /// `utsname.machine`, e.g. "iPhone17,3"; "arm64" / "x86_64" on the Simulator.
    public let machineIdentifier: String
    /// UIDevice.current.model, e.g. "iPhone".
    public let model: String
    /// UIDevice.current.systemName and systemVersion, e.g. "iOS", "18.2".
    public let systemName: String
    public let systemVersion: String
    /// ProcessInfo.processInfo.activeProcessorCount.
    public let cores: Int
    /// True on the Simulator (`#if targetEnvironment(simulator)`): timings are functional only.
    public let simulated: Bool
    /// Runtime -> version for every runtime the app uses, e.g. "coreml" -> "iOS 18.2".
    public let runtimeVersions: [String: String]
    /// The app's CFBundleShortVersionString.
    public let appVersion: String

    public init(machineIdentifier: String, model: String, systemName: String, systemVersion: String, cores: Int, simulated: Bool,
                runtimeVersions: [String: String], appVersion: String) {
        self.machineIdentifier = machineIdentifier
        self.model = model
        self.systemName = systemName
        self.systemVersion = systemVersion
        self.cores = cores
        self.simulated = simulated
        self.runtimeVersions = runtimeVersions
        self.appVersion = appVersion
    }
}

/// The schema's `device` (DeviceDescription in device_tests/base.py).
public struct DeviceDescription: Encodable, Equatable {
    public let name: String
    public let tier: String
    public let emulated: Bool
    public let machine: String
    public let cpu: String
    public let os: String
    public let runtimeVersions: [String: String]
    public let label: String
    public let details: [String: String]

    enum CodingKeys: String, CodingKey {
        case name, tier, emulated, machine, cpu, os, label, details
        case runtimeVersions = "runtime_versions"
    }

    /// The phone: tier `ios-<machine identifier>` (e.g. `ios-iphone17-3`), or `simulator-<arch>`
    /// (emulated: true, functional timings only) on the Simulator.
    public static func of(_ info: DeviceInfo) -> DeviceDescription {
        let id = info.machineIdentifier.isEmpty ? "unknown" : info.machineIdentifier
        let tier = info.simulated ? "simulator-\(slug(id))" : "ios-\(slug(id))"
        var details = ["hw.machine": id, "model": info.model, "cores": String(info.cores), "app": "ai.backdrop.demo \(info.appVersion)"]
        details = details.filter { !$0.value.isEmpty }
        let os = "\(info.systemName.isEmpty ? "iOS" : info.systemName) \(info.systemVersion.isEmpty ? "?" : info.systemVersion)"
        return DeviceDescription(
            name: "ios_demo:\(slug(id))", tier: tier, emulated: info.simulated, machine: info.simulated ? id : "arm64",
            // iOS does not name its CPU; the machine identifier determines the chip (e.g. iPhone17,3 has an A18).
            cpu: "Apple silicon (\(id))", os: os, runtimeVersions: info.runtimeVersions,
            label: info.simulated ? "iOS Simulator (\(id)), ios_demo benchmark mode" : "\(info.model) \(id), ios_demo benchmark mode",
            details: details)
    }
}

// MARK: - The document

/// The run's context that is not a measurement: who measured what, from which export.
public struct RunContext {
    public let host: String
    public let backdropVersion: String
    public let target: String
    public let checkpointSHA256: String?
    public let manifestSHA256: String?
    public let gitCommit: String?
    public let source: String
    public let notes: [String]
    public let session: String?

    public init(host: String, backdropVersion: String, target: String, checkpointSHA256: String?, manifestSHA256: String?,
                gitCommit: String? = nil, source: String = benchSource, notes: [String] = [], session: String? = nil) {
        self.host = host
        self.backdropVersion = backdropVersion
        self.target = target
        self.checkpointSHA256 = checkpointSHA256
        self.manifestSHA256 = manifestSHA256
        self.gitCommit = gitCommit
        self.source = source
        self.notes = notes
        self.session = session
    }

    /// The context from the manifest file's bytes: its backdrop_version, target and checkpoint sha256.
    /// - Throws: `ResultsError` when the manifest lacks them.
    public static func fromManifest(_ bytes: [UInt8], host: String, notes: [String] = [], session: String? = nil) throws -> RunContext {
        guard let m = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw ResultsError("the manifest is not a JSON object")
        }
        guard let version = m["backdrop_version"] as? String else { throw ResultsError("the manifest has no backdrop_version") }
        guard let target = (m["target"] as? [String: Any])?["name"] as? String else { throw ResultsError("the manifest has no target.name") }
        let checkpoint = (m["model"] as? [String: Any])?["checkpoint_sha256"] as? String
        return RunContext(host: host, backdropVersion: version, target: target, checkpointSHA256: checkpoint,
                          manifestSHA256: sha256Hex(bytes), notes: notes, session: session)
    }
}

private let sha256Pattern = try! NSRegularExpression(pattern: "^[0-9a-f]{64}$")  // swiftlint:disable:this force_try

private func isSHA256(_ s: String) -> Bool {
    sha256Pattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
}

/// The document, as Encodable values in the schema's shape (nulls written where it requires the key).
struct Document: Encodable {
    let format = resultsFormat
    let formatVersion = resultsFormatVersion
    let run: RunPart
    let results: [ResultPart]
    enum CodingKeys: String, CodingKey {
        case format, run, results
        case formatVersion = "format_version"
    }
}

struct GatePart: Encodable {
    let maxTempC: Double
    let timeoutS: Double
    enum CodingKeys: String, CodingKey {
        case maxTempC = "max_temp_c"
        case timeoutS = "timeout_s"
    }
}

struct ProtocolPart: Encodable {
    let name: String
    let warmup: Int
    let minFrames: Int
    let minSeconds: Double
    let rounds: Int
    let cooldownS: Double
    let gate: GatePart
    let threads: Int
    let frames: String
    enum CodingKeys: String, CodingKey {
        case name, warmup, rounds, gate, threads, frames
        case minFrames = "min_frames"
        case minSeconds = "min_seconds"
        case cooldownS = "cooldown_s"
    }
}

struct RunPart: Encodable {
    let startedAt: String
    let finishedAt: String
    let source: String
    let host: String
    let backdropVersion: String
    let gitCommit: String?
    let target: String
    let manifestSHA256: String?
    let protocolPart: ProtocolPart
    let device: DeviceDescription
    let session: String?
    let notes: [String]
    enum CodingKeys: String, CodingKey {
        case source, host, target, device, session, notes
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case backdropVersion = "backdrop_version"
        case gitCommit = "git_commit"
        case manifestSHA256 = "manifest_sha256"
        case protocolPart = "protocol"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(finishedAt, forKey: .finishedAt)
        try c.encode(source, forKey: .source)
        try c.encode(host, forKey: .host)
        try c.encode(backdropVersion, forKey: .backdropVersion)
        try c.encode(gitCommit, forKey: .gitCommit)  // null outside a checkout: the schema requires the key
        try c.encode(target, forKey: .target)
        try c.encode(manifestSHA256, forKey: .manifestSHA256)
        try c.encode(protocolPart, forKey: .protocolPart)
        try c.encode(device, forKey: .device)
        try c.encodeIfPresent(session, forKey: .session)
        try c.encode(notes, forKey: .notes)
    }
}

struct ArtifactPart: Encodable {
    let key, bucket, format, precision, stateForm, sha256: String
    let sizeBytes: Int
    let checkpointSHA256: String?
    let file: String
    let peer = false
    enum CodingKeys: String, CodingKey {
        case key, bucket, format, precision, sha256, file, peer
        case stateForm = "state_form"
        case sizeBytes = "size_bytes"
        case checkpointSHA256 = "checkpoint_sha256"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        for (k, v) in [(CodingKeys.key, key), (.bucket, bucket), (.format, format), (.precision, precision), (.stateForm, stateForm),
                       (.sha256, sha256), (.file, file)] {
            try c.encode(v, forKey: k)
        }
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(checkpointSHA256, forKey: .checkpointSHA256)
        try c.encode(peer, forKey: .peer)
    }
}

struct MemoryPart: Encodable {
    let peakRssMB: Double
    let baselineRssMB: Double?
    let kind: String
    enum CodingKeys: String, CodingKey {
        case kind
        case peakRssMB = "peak_rss_mb"
        case baselineRssMB = "baseline_rss_mb"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(peakRssMB, forKey: .peakRssMB)
        try c.encode(baselineRssMB, forKey: .baselineRssMB)
        try c.encode(kind, forKey: .kind)
    }
}

struct GateCheckPart: Encodable {
    let round: Int
    let waitedS: Double
    let timedOut: Bool
    let readings: [String: Double]
    enum CodingKeys: String, CodingKey {
        case round, readings
        case waitedS = "waited_s"
        case timedOut = "timed_out"
    }
}

struct ResultPart: Encodable {
    let artifact: ArtifactPart
    let runtimeVersions: [String: String]
    let threads: Int
    let cores: [String: Int]
    let memory: MemoryPart?
    let gate: [GateCheckPart]
    let flags: [String]
    let loadMs: [Double]
    let roundFrames: [Int]
    let modelMs: [Double]
    let e2eMs: [Double]
    enum CodingKeys: String, CodingKey {
        case artifact, threads, cores, memory, gate, flags
        case runtimeVersions = "runtime_versions"
        case loadMs = "load_ms"
        case roundFrames = "round_frames"
        case modelMs = "model_ms"
        case e2eMs = "e2e_ms"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(artifact, forKey: .artifact)
        try c.encode(runtimeVersions, forKey: .runtimeVersions)
        try c.encode(threads, forKey: .threads)
        try c.encode(cores, forKey: .cores)
        try c.encode(memory, forKey: .memory)  // null when the platform gave no peak: the schema requires the key
        try c.encode(gate, forKey: .gate)
        try c.encode(flags, forKey: .flags)
        try c.encode(loadMs, forKey: .loadMs)
        try c.encode(roundFrames, forKey: .roundFrames)
        try c.encode(modelMs, forKey: .modelMs)
        try c.encode(e2eMs, forKey: .e2eMs)
    }
}

public enum ResultsDocument {
    /// The results document of `run` as JSON (run.py run_bench's document, field for field):
    /// samples rounded to 4 decimals as run.py writes them, one result per artifact with at least
    /// one round (failed ones go to the notes, as run.py does).
    /// - Throws: `ResultsError` when nothing was measured or a value cannot go into the schema.
    public static func build(_ run: BenchRun, context: RunContext, device: DeviceDescription) throws -> Data {
        let measured = run.results.filter { $0.failure == nil && !$0.rounds.isEmpty }
        if measured.isEmpty {
            throw ResultsError("no artifact has a timed round: "
                                + run.results.map { "\($0.artifact.key): \($0.failure ?? "no rounds")" }.joined(separator: "; "))
        }
        if let c = context.checkpointSHA256, !isSHA256(c) { throw ResultsError("checkpoint sha256 \"\(c)\" is not 64 lower-case hex digits") }
        if let m = context.manifestSHA256, !isSHA256(m) { throw ResultsError("manifest sha256 \"\(m)\" is not 64 lower-case hex digits") }
        for (field, value) in [("source", context.source), ("host", context.host), ("backdrop_version", context.backdropVersion),
                               ("target", context.target)] where value.isEmpty {
            throw ResultsError("run.\(field) is empty; the schema needs a value")
        }
        let p = run.protocolUsed
        var notes = context.notes + run.notes
        for a in run.results { if let f = a.failure { notes.append("failed \(a.artifact.key): \(f)") } }
        let runPart = RunPart(
            startedAt: utcTimestamp(run.startedAt), finishedAt: utcTimestamp(run.finishedAt), source: context.source, host: context.host,
            backdropVersion: context.backdropVersion, gitCommit: context.gitCommit, target: context.target,
            manifestSHA256: context.manifestSHA256,
            protocolPart: ProtocolPart(name: p.name, warmup: p.warmup, minFrames: p.minFrames, minSeconds: p.minSeconds, rounds: p.rounds,
                                       cooldownS: p.cooldownS, gate: GatePart(maxTempC: p.gate.maxTempC, timeoutS: p.gate.timeoutS),
                                       threads: p.threads, frames: BenchProtocol.frames),
            device: device, session: context.session, notes: notes)
        let doc = Document(run: runPart, results: try measured.map { try result($0, context: context, device: device) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(doc) + Data("\n".utf8)
    }

    /// Writes `data` to `url` atomically (a temporary file renamed into place).
    /// - Throws: the file system's error, naming the file.
    public static func write(_ data: Data, to url: URL) throws {
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw ResultsError("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    private static func samples(_ values: [Double], _ what: String) throws -> [Double] {
        try values.enumerated().map { i, v in
            if !v.isFinite || v < 0 { throw ResultsError("\(what)[\(i)] is \(v); samples are milliseconds, finite and >= 0") }
            return pythonRound(v, 4)
        }
    }

    private static func result(_ a: ArtifactRun, context: RunContext, device: DeviceDescription) throws -> ResultPart {
        let art = a.artifact
        if !isSHA256(art.sha256) { throw ResultsError("\(art.key): sha256 \"\(art.sha256)\" is not 64 lower-case hex digits") }
        if art.sizeBytes < 0 { throw ResultsError("\(art.key): size_bytes \(art.sizeBytes) is negative") }
        var cores: [String: Int] = [:]
        var threads = 0
        var top: RoundTimings?
        for t in a.rounds {
            for (cpu, n) in t.cores { cores[String(cpu), default: 0] += n }
            threads = max(threads, t.threads)
            if let peak = t.peakRssMB, peak > (top?.peakRssMB ?? -1) { top = t }
        }
        var flags: [String] = []
        if a.gates.contains(where: \.timedOut) { flags.append("gate-timed-out") }
        if a.gates.allSatisfy({ $0.readings.isEmpty }) { flags.append("gate-unavailable") }
        if device.emulated { flags.append("emulated") }
        let memory = top.map { t in
            MemoryPart(peakRssMB: pythonRound(t.peakRssMB!, 3), baselineRssMB: t.baselineRssMB.map { pythonRound($0, 3) }, kind: t.memoryKind)
        }
        let roundFrames = try a.rounds.map { t -> Int in
            let n = t.modelMs.isEmpty ? t.e2eMs.count : t.modelMs.count
            if n < 1 { throw ResultsError("\(art.key): a round timed no frame") }
            return n
        }
        return ResultPart(
            artifact: ArtifactPart(key: art.key, bucket: art.bucket, format: art.format, precision: art.precision,
                                   stateForm: art.stateForm.rawValue, sha256: art.sha256, sizeBytes: art.sizeBytes,
                                   checkpointSHA256: context.checkpointSHA256, file: art.path),
            runtimeVersions: a.runtimeVersions, threads: threads, cores: cores, memory: memory,
            gate: a.gates.map { GateCheckPart(round: $0.round, waitedS: pythonRound($0.waitedS, 3), timedOut: $0.timedOut, readings: $0.readings) },
            flags: flags, loadMs: try samples(a.rounds.map(\.loadMs), "\(art.key) load_ms"), roundFrames: roundFrames,
            modelMs: try samples(a.rounds.flatMap(\.modelMs), "\(art.key) model_ms"),
            e2eMs: try samples(a.rounds.flatMap(\.e2eMs), "\(art.key) e2e_ms"))
    }
}

// MARK: - On-screen statistics

/// The median, 90th percentile and mean of latency samples, as numpy computes them
/// (`np.percentile` method "linear", `np.mean` with pairwise summation), for the app's screen.
public struct LatencySummary: Equatable {
    public let n: Int
    public let p50: Double
    public let p90: Double
    public let mean: Double
    public let min: Double
    public let max: Double

    /// nil for no samples.
    public init?(_ samples: [Double]) {
        if samples.isEmpty { return nil }
        let sorted = samples.sorted()
        n = samples.count
        p50 = LatencySummary.percentile(sorted, 50)
        p90 = LatencySummary.percentile(sorted, 90)
        mean = LatencySummary.pairwiseSum(samples[...]) / Double(samples.count)
        min = sorted[0]
        max = sorted[sorted.count - 1]
    }

    /// numpy.percentile(x, p) (method "linear") of ascending `sorted`.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let n = sorted.count
        let virtual = Double(n - 1) * (p / 100)
        if virtual >= Double(n - 1) { return sorted[n - 1] }
        if virtual < 0 { return sorted[0] }
        let previous = virtual.rounded(.down)
        let i = Int(previous)
        let gamma = virtual - previous
        let a = sorted[i], b = sorted[i + 1]
        let diff = b - a
        if gamma >= 0.5 {  // numpy's _lerp
            let weight = 1 - gamma
            let step = diff * weight
            return b - step
        }
        let step = diff * gamma
        return a + step
    }

    /// numpy's pairwise summation (pairwise_sum_DOUBLE: below 8 values one by one, up to 128 with
    /// 8 accumulators, above that split in halves rounded to 8).
    public static func pairwiseSum(_ a: ArraySlice<Double>) -> Double {
        let n = a.count, lo = a.startIndex
        if n < 8 {
            var res = 0.0
            for v in a { res += v }
            return res
        }
        if n <= 128 {
            var r = Array(a[lo..<lo + 8])
            var i = 8
            let end = n - n % 8
            while i < end {
                for k in 0..<8 { r[k] += a[lo + i + k] }
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n {
                res += a[lo + i]
                i += 1
            }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwiseSum(a[lo..<lo + n2]) + pairwiseSum(a[(lo + n2)...])
    }
}
