// swift-tools-version: 5.9
// BackdropKit: the app-side code of the backdrop pipeline for iOS (camera buffer -> model input,
// the state per state form, the mask back to the frame, threshold and feather), Foundation only,
// so that it builds and is tested on Linux against the goldens of dist/ios-arm64
// (ios_demo/BackdropKit/build.sh, `make ios-kit-test`). BackdropKitCoreML wraps MLModel /
// MLState / MLMultiArray for the app and is empty wherever Core ML does not exist.
import PackageDescription

let package = Package(
    name: "BackdropKit",
    // Float16 (the Core ML artifacts' input dtype) needs iOS 14 / macOS 11 and is not available
    // on Intel Macs; MLState needs iOS 18 / macOS 15 (checked with #available in BackdropKitCoreML).
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "BackdropKit", targets: ["BackdropKit", "BackdropKitCoreML"]),
        .executable(name: "backdrop-kit", targets: ["backdrop-kit"]),
    ],
    targets: [
        .target(name: "BackdropKit"),
        .target(name: "BackdropKitCoreML", dependencies: ["BackdropKit"]),
        .executableTarget(name: "backdrop-kit", dependencies: ["BackdropKit"]),
        // Fixtures/ holds .npz files the tests read by path (and the script that makes them).
        .testTarget(name: "BackdropKitTests", dependencies: ["BackdropKit"], exclude: ["Fixtures"]),
    ]
)
