// What the tests share: where the export is (BACKDROP_GOLDEN_DIST, default dist/ios-arm64 of
// this checkout; a missing folder fails the tests, it does not skip them), its goldens read
// once, and float comparison by bit pattern.
import BackdropKit
import Foundation
import XCTest

/// The repository root, from this file's path (ios_demo/BackdropKit/Tests/BackdropKitTests/).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The package folder (ios_demo/BackdropKit).
let packageRoot = repositoryRoot.appendingPathComponent("ios_demo/BackdropKit")

/// Tests/BackdropKitTests/Fixtures.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// The export under test.
let dist: URL = {
    if let d = ProcessInfo.processInfo.environment["BACKDROP_GOLDEN_DIST"], !d.isEmpty { return URL(fileURLWithPath: d) }
    return repositoryRoot.appendingPathComponent("dist/ios-arm64")
}()

/// One golden sequence (export/goldens.py's .npz), the fields the tests use.
struct Golden {
    let file: URL
    let bucket: String
    let bucketHeight: Int
    let bucketWidth: Int
    let width: Int
    let height: Int
    let format: String
    let buffers: NpyArray
    let frames: NpyArray
    let resets: [Bool]
    let masks: NpyArray
    let cameraMasks: NpyArray
    var count: Int { resets.count }

    func buffer(_ n: Int) throws -> [UInt8] { try buffers.row(n).bytes() }

    /// Frame `n`'s packed camera buffer as a frame.
    func frame(_ n: Int) throws -> YUV420Frame {
        let b = try buffer(n)
        switch format {
        case "nv12": return try YUV420Frame.nv12(buffer: b, width: width, height: height)
        case "nv21": return try YUV420Frame.nv21(buffer: b, width: width, height: height)
        default: throw NpyError("\(file.path): camera_format \(format)")
        }
    }
}

private var goldenCache: [String: Golden] = [:]
private let goldenLock = NSLock()

/// Fails (does not skip) when the export is missing.
func requireDist(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dist.path, isDirectory: &isDir), isDir.boolValue else {
        XCTFail("\(dist.path) does not exist: run `make export TARGET=ios-arm64` first (or set BACKDROP_GOLDEN_DIST)",
                file: file, line: line)
        throw NpyError("no export at \(dist.path)")
    }
    return dist
}

func loadManifest() throws -> Manifest {
    try Manifest.load(contentsOf: try requireDist().appendingPathComponent("manifest.json"))
}

/// Every golden file under the export's goldens/ (at least one, or the test fails).
func goldenFiles(file: StaticString = #filePath, line: UInt = #line) throws -> [URL] {
    let folder = try requireDist().appendingPathComponent("goldens")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    let files = names.filter { $0.hasSuffix(".npz") }.sorted().map { folder.appendingPathComponent($0) }
    if files.isEmpty {
        XCTFail("no goldens (*.npz) under \(folder.path)", file: file, line: line)
        throw NpyError("no goldens under \(folder.path)")
    }
    return files
}

func golden(_ url: URL) throws -> Golden {
    goldenLock.lock()
    defer { goldenLock.unlock() }
    if let g = goldenCache[url.path] { return g }
    let a = try Npy.readNpz(contentsOf: url)
    func get(_ k: String) throws -> NpyArray {
        guard let v = a[k] else { throw NpyError("\(url.path) has no \(k)") }
        return v
    }
    XCTAssertEqual(try get("schema").string(), "backdrop-golden/1", url.path)
    let size = try get("camera_size").ints()
    let bucket = try get("bucket_size").ints()
    let g = Golden(file: url, bucket: try get("bucket_name").string(), bucketHeight: bucket[0], bucketWidth: bucket[1],
                   width: size[1], height: size[0], format: try get("camera_format").string(), buffers: try get("camera_buffers"),
                   frames: try get("frames"), resets: try get("resets").booleans(), masks: try get("expected_masks"),
                   cameraMasks: try get("expected_camera_masks"))
    goldenCache[url.path] = g
    return g
}

func golden(bucket: String, in m: Manifest) throws -> Golden {
    guard let rel = m.goldens[bucket] else { throw ManifestError("the manifest has no golden for \(bucket)") }
    return try golden(try requireDist().appendingPathComponent(rel))
}

/// The index of the first value whose float32 bits differ, or nil (lengths must match).
func firstDifference(_ got: [Float], _ want: [Float]) -> Int? {
    if got.count != want.count { return -1 }
    for i in got.indices where got[i].bitPattern != want[i].bitPattern { return i }
    return nil
}

func assertBitEqual(_ got: [Float], _ want: [Float], _ what: @autoclosure () -> String,
                    file: StaticString = #filePath, line: UInt = #line) {
    if let i = firstDifference(got, want) {
        if i < 0 {
            XCTFail("\(what()): \(got.count) values, expected \(want.count)", file: file, line: line)
        } else {
            XCTFail("\(what()): differs first at flat index \(i): \(got[i]) (bits \(String(got[i].bitPattern, radix: 16))) != "
                        + "\(want[i]) (bits \(String(want[i].bitPattern, radix: 16)))", file: file, line: line)
        }
    }
}

func assertBitEqual(_ got: [Float16], _ want: [Float16], _ what: @autoclosure () -> String,
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, what(), file: file, line: line)
    if let i = got.indices.first(where: { got[$0].bitPattern != want[$0].bitPattern }) {
        XCTFail("\(what()): float16 differs first at flat index \(i): bits \(String(got[i].bitPattern, radix: 16)) != "
                    + "\(String(want[i].bitPattern, radix: 16))", file: file, line: line)
    }
}
