// The demo app's entry point. NOT BUILT OR RUN HERE (no Xcode on the machine that wrote it):
// ios_demo/README.md says how to build it and which parts CI verifies (BackdropKit, on Linux).
//
// Launched normally it shows the front camera with the background blurred or replaced, after a
// start-up self-test on the bundled golden. Launched with `--benchmark ...` arguments
// (`xcrun devicectl device process launch --device ID ai.backdrop.demo -- --benchmark ...`) it
// runs backdrop's bench protocol and writes the results document into its Documents folder.
import BackdropKit
import SwiftUI

@main
struct BackdropDemoApp: App {
    var body: some Scene {
        WindowGroup {
            RootView()
        }
    }
}

struct RootView: View {
    /// The benchmark request in the launch arguments, or why it does not parse.
    private let request: Result<BenchRequest?, Error> = Result { try BenchRequest.from(arguments: CommandLine.arguments) }

    var body: some View {
        switch request {
        case let .success(r?): BenchmarkView(request: r)
        case .success(nil): ContentView()
        case let .failure(e): Text("benchmark arguments: \(e.localizedDescription)").padding()
        }
    }
}
