// What the results document says about the phone: BackdropKit's DeviceInfo from uname's machine
// identifier (e.g. iPhone17,3), UIDevice and the app's version.
import BackdropKit
import Foundation
import UIKit

enum Device {
    /// `utsname.machine`: the model identifier on a phone; the Simulator's host architecture there.
    static var machineIdentifier: String {
        if let sim = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] { return sim }
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func info() -> DeviceInfo {
        #if targetEnvironment(simulator)
        let simulated = true
        #else
        let simulated = false
        #endif
        let v = ProcessInfo.processInfo.operatingSystemVersion
        return DeviceInfo(
            machineIdentifier: machineIdentifier, model: UIDevice.current.model, systemName: UIDevice.current.systemName,
            systemVersion: UIDevice.current.systemVersion, cores: ProcessInfo.processInfo.activeProcessorCount, simulated: simulated,
            runtimeVersions: ["coreml": "iOS \(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"],
            appVersion: Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "?")
    }

    /// The gate's reading: ProcessInfo.thermalState (0 nominal ... 3 critical), the one thermal figure iOS gives an app.
    static func thermalReadings() -> [String: Double] {
        [thermalStateReading: Double(ProcessInfo.processInfo.thermalState.rawValue)]
    }
}
