// Benchmark mode: `xcrun devicectl device process launch --device ID ai.backdrop.demo -- --benchmark
// [--artifacts K1,K2] [--protocol quick|mlperf] [--rounds N] ... [--out NAME.json]`. Checks each
// chosen artifact against the bundled golden (into the document's notes), runs backdrop's bench
// protocol (BackdropKit's BenchRunner: priming, rotated rounds, cool-down, the thermal-state gate,
// warm-up, the golden in order with its resets), and writes the results document into the app's
// Documents folder (renamed into place when complete; on failure NAME.json.error.txt instead).
import BackdropKit
import SwiftUI

struct BenchmarkView: View {
    let request: BenchRequest
    @State private var lines: [String] = []

    var body: some View {
        ScrollView {
            VStack(alignment: .leading) {
                Text("backdrop benchmark mode").font(.headline)
                ForEach(Array(lines.enumerated()), id: \.offset) { Text($0.element).font(.system(.caption, design: .monospaced)) }
            }
            .padding()
        }
        .onAppear {
            UIApplication.shared.isIdleTimerDisabled = true  // the screen must stay on for the whole run
            DispatchQueue.global(qos: .userInitiated).async { run() }
        }
    }

    private func say(_ line: String) {
        print("backdrop-bench: \(line)")  // visible with `devicectl device process launch --console`
        DispatchQueue.main.async { lines.append(line) }
    }

    private func run() {
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        let out = documents.appendingPathComponent(request.out)
        do {
            let bundle = try AppBundle()
            let chosen = try request.select(bundle.manifest).filter { $0.format == "coreml" }
            if chosen.isEmpty { throw BenchError("no Core ML artifact among the requested ones (this app runs Core ML only)") }
            let hasMLState: Bool
            if #available(iOS 18.0, *) { hasMLState = true } else { hasMLState = false }
            let runnable = chosen.filter { $0.stateForm != .native || hasMLState }
            var notes = chosen.filter { a in !runnable.contains { $0.key == a.key } }.map { "skipped \($0.key): MLState needs iOS 18" }
            let goldens = try bundle.goldens()
            for a in runnable {
                guard let g = goldens[a.bucket] else { continue }
                let parity = checkParity(manifest: bundle.manifest, artifact: a, golden: g, runner: try bundle.runner(for: a),
                                         minIoU: request.minIoU)
                say(parity.message)
                notes.append(parity.message)
            }
            let runner = BenchRunner(manifest: bundle.manifest, protocol: request.protocolUsed, goldens: goldens,
                                     load: { try bundle.runner(for: $0) }, gateReadings: Device.thermalReadings,
                                     progress: { key, done, all in say("\(done)/\(all) \(key)") })
            let run = try runner.run(runnable)
            for a in run.results {
                if let s = LatencySummary(a.rounds.flatMap(\.modelMs)), let e = LatencySummary(a.rounds.flatMap(\.e2eMs)) {
                    say(String(format: "%@: model p50 %.2f ms, e2e p50 %.2f ms (%d frames)", a.artifact.key, s.p50, e.p50, s.n))
                }
            }
            let context = try RunContext.fromManifest(bundle.manifestBytes, host: Device.machineIdentifier, notes: notes)
            let data = try ResultsDocument.build(run, context: context, device: DeviceDescription.of(Device.info()))
            try ResultsDocument.write(data, to: out)
            say("done \(out.path)")
        } catch {
            let text = "failed: \(error.localizedDescription)\n"
            try? Data(text.utf8).write(to: documents.appendingPathComponent(request.out + ".error.txt"), options: .atomic)
            say(text)
        }
    }
}
