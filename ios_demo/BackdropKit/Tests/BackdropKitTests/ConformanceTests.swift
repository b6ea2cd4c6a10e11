// The BDCC -> BDCR harness on small hand-made case files (the full comparison with the Python
// reference is `backdrop conformance --impl swift`, which runs the backdrop-kit tool): an
// accepted case's record, the rejections where frames.py rejects, and malformed case files.
import BackdropKit
import Foundation
import XCTest

final class ConformanceTests: XCTestCase {
    private func u32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    private func caseRecord(name: String, layout: Int, range: Int, width: Int, height: Int, stride: Int, bh: Int, bw: Int,
                            buffer: [UInt8], mask: [Float]) -> [UInt8] {
        let n = Array(name.utf8)
        var out: [UInt8] = []
        for v in [n.count, layout, range, width, height, stride, bh, bw, buffer.count] { out += u32(v) }
        out += n + buffer
        for m in mask { out += u32(Int(m.bitPattern)) }
        return out
    }

    private func file(_ records: [[UInt8]]) -> [UInt8] { Array("BDCC".utf8) + u32(1) + u32(records.count) + records.joined() }

    func testAcceptedAndRejectedCases() throws {
        let buffer: [UInt8] = [16, 126, 235, 0, 16, 240]  // a 2x2 NV12 frame
        let mask: [Float] = [0, 0.25, 0.5, 1]  // a 2x2 bucket
        let cases = file([
            caseRecord(name: "ok", layout: 1, range: 1, width: 2, height: 2, stride: 0, bh: 2, bw: 2, buffer: buffer, mask: mask),
            caseRecord(name: "short", layout: 0, range: 0, width: 2, height: 2, stride: 0, bh: 2, bw: 2,
                       buffer: Array(buffer.dropLast()), mask: mask),
            caseRecord(name: "narrow", layout: 1, range: 0, width: 3, height: 2, stride: 3, bh: 2, bw: 2,
                       buffer: [UInt8](repeating: 0, count: 9), mask: mask),
            caseRecord(name: "i420", layout: 2, range: 0, width: 3, height: 2, stride: 3, bh: 2, bw: 2,
                       buffer: [UInt8](repeating: 0, count: 3 * 2 + 2 * 2), mask: mask),
        ])
        let r = try Conformance.results(forCaseFile: cases)
        XCTAssertEqual(Array(r[0..<12]), Array("BDCR".utf8) + u32(1) + u32(4))
        var pos = 12
        func take(_ n: Int) -> [UInt8] {
            defer { pos += n }
            return Array(r[pos..<pos + n])
        }
        XCTAssertEqual(take(4), u32(0))
        XCTAssertEqual(take(24), [2, 2, 0, 0, 0, 0].flatMap { u32($0) }, "placement of 2x2 in 2x2")
        XCTAssertEqual(take(12), [0, 1, 255, 128, 1, 255, 255, 1, 255, 0, 1, 255], "420v expanded")
        let input = take(48)
        XCTAssertEqual(Array(input[0..<4]), u32(0), "Y 0 / 255 = 0")
        XCTAssertEqual(Array(input[4..<8]), u32(Int((Float(128) / 255).bitPattern)))
        XCTAssertEqual(take(16), mask.flatMap { u32(Int($0.bitPattern)) }, "a bucket-sized mask comes back as it is")
        for what in ["NV21 buffer", "row stride 3 is too small"] {
            XCTAssertEqual(take(4), u32(1), what)
            let m = Int(take(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) })
            let message = String(decoding: take(m), as: UTF8.self)
            XCTAssertTrue(message.contains(what), message)
        }
        XCTAssertEqual(take(4), u32(0), "I420 at row stride 3 (chroma rows 2) is accepted")
        pos += 24 + 18 + 48 + 24
        XCTAssertEqual(pos, r.count)
    }

    func testMalformedCaseFiles() throws {
        let good = file([caseRecord(name: "ok", layout: 1, range: 0, width: 2, height: 2, stride: 0, bh: 2, bw: 2,
                                    buffer: [UInt8](repeating: 0, count: 6), mask: [0, 0, 0, 0])])
        XCTAssertNoThrow(try Conformance.results(forCaseFile: good))
        let bad: [(String, [UInt8])] = [
            ("magic", Array("BDCX".utf8) + good.dropFirst(4)),
            ("version", Array(good[0..<4]) + u32(2) + good.dropFirst(8)),
            ("ends inside", Array(good.dropLast())),
            ("after its", good + [0]),
            ("layout", file([caseRecord(name: "x", layout: 3, range: 0, width: 2, height: 2, stride: 0, bh: 2, bw: 2,
                                        buffer: [UInt8](repeating: 0, count: 6), mask: [0, 0, 0, 0])])),
            ("color range", file([caseRecord(name: "x", layout: 1, range: 2, width: 2, height: 2, stride: 0, bh: 2, bw: 2,
                                             buffer: [UInt8](repeating: 0, count: 6), mask: [0, 0, 0, 0])])),
        ]
        for (what, bytes) in bad {
            XCTAssertThrowsError(try Conformance.results(forCaseFile: bytes), what) { e in
                XCTAssertTrue(e is CaseFileError && "\(e)".contains(what), "\(what): \(e)")
            }
        }
    }
}
