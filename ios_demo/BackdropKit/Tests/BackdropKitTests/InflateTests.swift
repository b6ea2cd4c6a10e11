// The pure-Swift inflate and zip reader against Python's zlib and zipfile: Fixtures/inflate-cases.npz
// (made by Fixtures/make_fixtures.py, np.savez_compressed: its entries are themselves deflated)
// holds raw deflate streams of every block type and strategy zlib writes, with their originals.
import BackdropKit
import Foundation
import XCTest

final class InflateTests: XCTestCase {
    func testEveryFixtureStreamInflatesToItsOriginal() throws {
        let a = try Npy.readNpz(contentsOf: fixtures.appendingPathComponent("inflate-cases.npz"))
        let about = try XCTUnwrap(a["about"]).strings()
        XCTAssertGreaterThanOrEqual(about.count, 10)
        for (k, what) in about.enumerated() {
            let key = String(format: "%02d", k)
            let raw = try XCTUnwrap(a["raw_\(key)"]).bytes()
            let stream = try XCTUnwrap(a["deflate_\(key)"]).bytes()
            XCTAssertEqual(try inflate(stream, expectedSize: raw.count), raw, "case \(k): \(what)")
            // A stream cut short, or said to be longer or shorter, is an error, never a crash.
            if stream.count > 2 {
                XCTAssertThrowsError(try inflate(Array(stream.dropLast(stream.count / 2)), expectedSize: raw.count), "case \(k) truncated")
            }
            XCTAssertThrowsError(try inflate(stream, expectedSize: raw.count + 1), "case \(k) one byte longer")
            if !raw.isEmpty { XCTAssertThrowsError(try inflate(stream, expectedSize: raw.count - 1), "case \(k) one byte shorter") }
        }
    }

    func testMalformedStreamsAreErrors() {
        XCTAssertThrowsError(try inflate([0x07], expectedSize: 0)) { e in  // final block of the reserved type 3
            XCTAssertTrue("\(e)".contains("reserved"), "\(e)")
        }
        XCTAssertThrowsError(try inflate([0x01, 0x05, 0x00, 0x00, 0x00], expectedSize: 5)) { e in  // stored, LEN != ~NLEN
            XCTAssertTrue("\(e)".contains("length check"), "\(e)")
        }
        XCTAssertThrowsError(try inflate([], expectedSize: 0))
        // Random bytes: whatever they decode to, an error and no crash (or, rarely, a valid stream).
        var seed: UInt64 = 12345
        for _ in 0..<200 {
            var bytes = [UInt8](repeating: 0, count: 64)
            for i in bytes.indices {
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                bytes[i] = UInt8(seed >> 56)
            }
            _ = try? inflate(bytes, expectedSize: 1000)
        }
    }

    func testCRC32() {
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xcbf4_3926)  // the check value of CRC-32/ISO-HDLC
        XCTAssertEqual(crc32([]), 0)
    }

    func testADamagedEntryIsCaughtByItsCRC() throws {
        var bytes = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("dtypes.npz")))
        // dtypes.npz is stored (np.savez): flip a byte of the u1 array's data.
        let entries = try ZipArchive(bytes).entries()
        let u1 = try XCTUnwrap(entries.first { $0.name == "u1.npy" })
        XCTAssertEqual(u1.method, 0)
        let content = try u1.contents()
        guard let at = bytes.indices.first(where: { i in i + content.count <= bytes.count && Array(bytes[i..<i + content.count]) == content })
        else { return XCTFail("the stored entry's bytes are not in the archive") }
        bytes[at + content.count - 1] ^= 0xff
        XCTAssertThrowsError(try Npy.readNpz(bytes, name: "damaged.npz")) { e in
            XCTAssertTrue("\(e)".contains("CRC-32"), "\(e)")
        }
        XCTAssertThrowsError(try Npy.readNpz(Array(bytes.prefix(100)), name: "cut.npz")) { e in
            XCTAssertTrue("\(e)".contains("not a zip archive"), "\(e)")
        }
    }
}
