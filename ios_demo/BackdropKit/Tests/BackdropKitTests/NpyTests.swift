// .npy reading and writing, and .npz of stored entries (Fixtures/dtypes.npz, np.savez): every
// dtype BackdropKit reads, with the values Fixtures/make_fixtures.py wrote.
import BackdropKit
import Foundation
import XCTest

final class NpyTests: XCTestCase {
    func testEveryDtypeOfTheFixture() throws {
        let a = try Npy.readNpz(contentsOf: fixtures.appendingPathComponent("dtypes.npz"))
        let f4 = try XCTUnwrap(a["f4"])
        XCTAssertEqual(f4.shape, [2, 3])
        XCTAssertEqual(try f4.floats().map(\.bitPattern),
                       [0, 0x8000_0000, 0x3fc0_0000, (Float(1) / 255).bitPattern, 0x7f7f_ffff, 0x8000_0001])
        XCTAssertEqual(try f4.row(1).floats().map(\.bitPattern), [(Float(1) / 255).bitPattern, 0x7f7f_ffff, 0x8000_0001])
        XCTAssertEqual(try XCTUnwrap(a["f2"]).halves().map(\.bitPattern), [0, 0x3c00, 0x7bff, 0x0001, 0xb800])
        XCTAssertEqual(try XCTUnwrap(a["i8"]).int64s(), [0, 1, -1, 1 << 62, Int64.min])
        XCTAssertEqual(try XCTUnwrap(a["b1"]).booleans(), [true, false, true])
        let u1 = try XCTUnwrap(a["u1"])
        XCTAssertEqual(u1.shape, [16, 16])
        XCTAssertEqual(try u1.bytes(), (0..<256).map { UInt8($0) })
        XCTAssertEqual(try XCTUnwrap(a["scalar"]).string(), "backdrop-golden/1")
        XCTAssertEqual(try XCTUnwrap(a["scalar"]).shape, [])
        XCTAssertEqual(try XCTUnwrap(a["names"]).strings(), ["frame_00000", "é", "∑x"])
        XCTAssertThrowsError(try f4.bytes()) { e in XCTAssertTrue("\(e)".contains("<f4"), "\(e)") }
    }

    func testWrittenArraysReadBack() throws {
        let values: [Float] = [0, -0.0, .infinity, 1.5, Float(bitPattern: 1)]
        let back = try Npy.read(Npy.encode(floats: values, shape: [5, 1]), name: "floats")
        XCTAssertEqual(back.shape, [5, 1])
        XCTAssertEqual(try back.floats().map(\.bitPattern), values.map(\.bitPattern))
        let h: [Float16] = [0, 1, 65504, -2]
        XCTAssertEqual(try Npy.read(Npy.encode(halves: h, shape: [4]), name: "halves").halves(), h)
        let bytes = Npy.encode(descr: "|u1", shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(bytes.count % 64, 6, "NumPy pads the header so the data starts at a multiple of 64")
        XCTAssertEqual(try Npy.read(bytes, name: "u1").bytes(), [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try Npy.read(Array(bytes.dropLast()), name: "short")) { e in
            XCTAssertTrue("\(e)".contains("data bytes"), "\(e)")
        }
        XCTAssertThrowsError(try Npy.read([1, 2, 3], name: "junk")) { e in XCTAssertTrue("\(e)".contains("not a .npy"), "\(e)") }
    }
}
