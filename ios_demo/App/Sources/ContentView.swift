// The live view's screen: the composited camera picture, the self-test result, FPS and
// per-stage latency, and the controls (blur / replace, precision, camera).
import BackdropKit
import SwiftUI

struct ContentView: View {
    @StateObject private var live = LiveSession()

    var body: some View {
        ZStack(alignment: .bottom) {
            Color.black.ignoresSafeArea()
            if let image = live.image {
                Image(decorative: image, scale: 1).resizable().scaledToFit().ignoresSafeArea()
            }
            VStack(alignment: .leading, spacing: 6) {
                ForEach(live.selfTest, id: \.self) { Text($0).font(.caption2) }
                Text(live.status).font(.caption)
                Text(live.stats).font(.system(.caption, design: .monospaced))
                HStack {
                    Picker("Background", selection: Binding(get: { live.mode }, set: { live.setMode($0) })) {
                        ForEach(Compositor.Mode.allCases) { Text($0.rawValue).tag($0) }
                    }
                    .pickerStyle(.segmented)
                    Picker("Precision", selection: Binding(get: { live.precision }, set: { live.setPrecision($0) })) {
                        ForEach(live.precisions, id: \.self) { Text($0).tag($0) }
                    }
                    Button("Flip") { live.switchCamera() }
                }
            }
            .foregroundColor(.white)
            .padding()
            .background(Color.black.opacity(0.5))
        }
        .onAppear { live.start() }
    }
}
