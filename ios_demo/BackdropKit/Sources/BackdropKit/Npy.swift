// NumPy .npy reading and writing, and .npz reading (a zip of .npy files, stored or deflated:
// the goldens are written by np.savez_compressed) for the arrays backdrop exchanges with app code:
// little-endian uint8, bool, int64, float32, float16 and fixed-width unicode, C order. The header
// is NumPy's documented format (a Python dict literal with 'descr', 'fortran_order', 'shape');
// anything else is refused with the reason.
import Foundation

/// One array: its dtype descr (e.g. `<f4`, `|u1`, `<U12`), shape and raw little-endian bytes.
public struct NpyArray: Sendable {
    public let descr: String
    public let shape: [Int]
    public let data: [UInt8]

    public init(descr: String, shape: [Int], data: [UInt8]) {
        self.descr = descr
        self.shape = shape
        self.data = data
    }

    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }

    private func need(_ descrs: String...) throws {
        if !descrs.contains(descr) {
            throw NpyError("array is \(descr), expected \(descrs.joined(separator: " or "))")
        }
    }

    /// float32 values (`<f4`).
    public func floats() throws -> [Float] {
        try need("<f4")
        return littleEndian(UInt32.self).map { Float(bitPattern: $0) }
    }

    /// float16 values (`<f2`).
    public func halves() throws -> [Float16] {
        try need("<f2")
        return littleEndian(UInt16.self).map { Float16(bitPattern: $0) }
    }

    /// int64 values (`<i8`).
    public func int64s() throws -> [Int64] {
        try need("<i8")
        return littleEndian(UInt64.self).map { Int64(bitPattern: $0) }
    }

    /// int64 values as Int.
    public func ints() throws -> [Int] { try int64s().map { Int($0) } }

    /// Raw bytes of a uint8 or bool array.
    public func bytes() throws -> [UInt8] {
        try need("|u1", "|b1")
        return data
    }

    /// bool values (`|b1`).
    public func booleans() throws -> [Bool] {
        try need("|b1")
        return data.map { $0 != 0 }
    }

    /// A fixed-width unicode array (`<Un`: n UTF-32LE code points per item, NUL padded).
    public func strings() throws -> [String] {
        guard descr.hasPrefix("<U"), let width = Int(descr.dropFirst(2)) else {
            throw NpyError("array is \(descr), expected a unicode string array (<Un)")
        }
        let points = littleEndian(UInt32.self)
        return (0..<count).map { item in
            var s = String.UnicodeScalarView()
            for k in 0..<width {
                let cp = points[item * width + k]
                if cp == 0 { break }
                if let u = Unicode.Scalar(cp) { s.append(u) }
            }
            return String(s)
        }
    }

    /// The single string of a 0-d unicode array.
    public func string() throws -> String {
        let s = try strings()
        guard s.count == 1 else { throw NpyError("expected one string, the array holds \(s.count)") }
        return s[0]
    }

    /// Item `index` along the first axis as its own array.
    public func row(_ index: Int) throws -> NpyArray {
        guard let n0 = shape.first, index >= 0, index < n0 else {
            throw NpyError("row \(index) of an array of shape \(shape)")
        }
        let n = data.count / n0
        return NpyArray(descr: descr, shape: Array(shape.dropFirst()), data: Array(data[index * n..<(index + 1) * n]))
    }

    private func littleEndian<T: FixedWidthInteger>(_: T.Type) -> [T] {
        let n = data.count / MemoryLayout<T>.size
        var out = [T](repeating: 0, count: n)
        out.withUnsafeMutableBytes { dst in data.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<n * MemoryLayout<T>.size])) } }
        return out.map { T(littleEndian: $0) }
    }
}

/// .npy / .npz reading and .npy writing.
public enum Npy {
    static let magic: [UInt8] = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]  // \x93NUMPY
    static let itemSize: [String: Int] = ["|u1": 1, "|b1": 1, "<i8": 8, "<f4": 4, "<f2": 2]

    /// Reads a .npy file.
    /// - Throws: `NpyError` (unreadable, not .npy, an unsupported dtype or order).
    public static func read(contentsOf url: URL) throws -> NpyArray {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw NpyError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try read([UInt8](data), name: url.path)
    }

    /// Parses .npy bytes; `name` is for messages.
    public static func read(_ all: [UInt8], name: String) throws -> NpyArray {
        if all.count < 10 || Array(all[0..<6]) != magic { throw NpyError("\(name) is not a .npy file") }
        let major = all[6]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(all[8]) | Int(all[9]) << 8
            start = 10
        case 2, 3:
            if all.count < 12 { throw NpyError("\(name): truncated .npy header") }
            headerLength = Int(all[8]) | Int(all[9]) << 8 | Int(all[10]) << 16 | Int(all[11]) << 24
            start = 12
        default:
            throw NpyError("\(name): .npy version \(major) is not supported")
        }
        if all.count < start + headerLength { throw NpyError("\(name): truncated .npy header") }
        let header = String(decoding: all[start..<start + headerLength], as: UTF8.self)
        guard let descr = match(header, #"'descr'\s*:\s*'([^']+)'"#) else {
            throw NpyError("\(name): the header has no descr: \(header)")
        }
        if header.range(of: #"'fortran_order'\s*:\s*True"#, options: .regularExpression) != nil {
            throw NpyError("\(name): Fortran order is not supported; save a C-order array (np.ascontiguousarray)")
        }
        guard let shapeText = match(header, #"'shape'\s*:\s*\(([^)]*)\)"#) else {
            throw NpyError("\(name): the header has no shape: \(header)")
        }
        var shape: [Int] = []
        for part in shapeText.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else { throw NpyError("\(name): shape (\(shapeText)) is not a tuple of sizes") }
            shape.append(v)
        }
        let item: Int
        if let size = itemSize[descr] {
            item = size
        } else if descr.hasPrefix("<U"), let width = Int(descr.dropFirst(2)) {
            item = 4 * width
        } else {
            throw NpyError("\(name): dtype \(descr) is not supported (uint8, bool, int64, float32, float16, unicode)")
        }
        let count = shape.reduce(1, *)
        let body = start + headerLength
        if all.count - body != count * item {
            throw NpyError("\(name): \(all.count - body) data bytes for shape \(shape) of \(descr) (\(count * item) expected)")
        }
        return NpyArray(descr: descr, shape: shape, data: Array(all[body...]))
    }

    private static func match(_ text: String, _ pattern: String) -> String? {
        guard let re = try? NSRegularExpression(pattern: pattern),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), m.numberOfRanges > 1,
              let r = Range(m.range(at: 1), in: text) else { return nil }
        return String(text[r])
    }

    /// Every array of a .npz (a zip of .npy files), by name without `.npy`.
    /// - Throws: `NpyError` (unreadable, not a zip, a damaged entry, an entry that is not .npy).
    public static func readNpz(contentsOf url: URL) throws -> [String: NpyArray] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw NpyError("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try readNpz([UInt8](data), name: url.path)
    }

    /// Every array of .npz bytes; `name` is for messages.
    public static func readNpz(_ bytes: [UInt8], name: String) throws -> [String: NpyArray] {
        var out: [String: NpyArray] = [:]
        do {
            for entry in try ZipArchive(bytes).entries() where entry.name.hasSuffix(".npy") {
                let content = try entry.contents()
                out[String(entry.name.dropLast(4))] = try read(content, name: "\(name):\(entry.name)")
            }
        } catch let e as ZipError {
            throw NpyError("\(name): \(e.message)")
        }
        return out
    }

    /// A float32 C-order array as .npy bytes.
    public static func encode(floats values: [Float], shape: [Int]) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: values.count * 4)
        for (i, v) in values.enumerated() {
            let b = v.bitPattern.littleEndian
            data[4 * i] = UInt8(b & 0xff)
            data[4 * i + 1] = UInt8(b >> 8 & 0xff)
            data[4 * i + 2] = UInt8(b >> 16 & 0xff)
            data[4 * i + 3] = UInt8(b >> 24 & 0xff)
        }
        return encode(descr: "<f4", shape: shape, data: data)
    }

    /// A float16 C-order array as .npy bytes.
    public static func encode(halves values: [Float16], shape: [Int]) -> [UInt8] {
        var data = [UInt8](repeating: 0, count: values.count * 2)
        for (i, v) in values.enumerated() {
            data[2 * i] = UInt8(v.bitPattern & 0xff)
            data[2 * i + 1] = UInt8(v.bitPattern >> 8)
        }
        return encode(descr: "<f2", shape: shape, data: data)
    }

    /// .npy (version 1.0) bytes of `data` with this descr and shape; the header padded to 64 bytes as NumPy does.
    public static func encode(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let pad = (64 - (10 + header.utf8.count + 1) % 64) % 64
        header += String(repeating: " ", count: pad) + "\n"
        let h = Array(header.utf8)
        return magic + [1, 0, UInt8(h.count & 0xff), UInt8(h.count >> 8)] + h + data
    }
}
