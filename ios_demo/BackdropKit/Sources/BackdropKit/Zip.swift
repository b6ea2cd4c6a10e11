// A small zip reader (PKWARE APPNOTE 6.3): the central directory (with its zip64 forms, which
// NumPy's np.savez writes as it forces zip64 on every entry), stored (method 0) and deflated
// (method 8) entries, each checked against its CRC-32. Enough for .npz files; no encryption,
// no multi-disk archives.
import Foundation

/// A zip archive that cannot be read.
public struct ZipError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One entry of a `ZipArchive`.
public struct ZipEntry {
    public let name: String
    public let method: Int
    public let crc: UInt32
    public let compressedSize: Int
    public let uncompressedSize: Int
    let localHeaderOffset: Int
    let archive: [UInt8]

    /// The entry's bytes, decompressed and checked against its CRC-32.
    /// - Throws: `ZipError` for an unsupported method, a damaged local header or stream, or a CRC mismatch.
    public func contents() throws -> [UInt8] {
        let a = archive
        let p = localHeaderOffset
        guard p >= 0, p + 30 <= a.count, readU32(a, p) == 0x0403_4b50 else {
            throw ZipError("entry \(name): no local file header at byte \(p)")
        }
        let start = p + 30 + Int(readU16(a, p + 26)) + Int(readU16(a, p + 28))
        guard start <= a.count, a.count - start >= compressedSize else {
            throw ZipError("entry \(name): its \(compressedSize) bytes run past the end of the archive (truncated file?)")
        }
        let out: [UInt8]
        switch method {
        case 0:
            if compressedSize != uncompressedSize {
                throw ZipError("entry \(name): stored with \(compressedSize) bytes but \(uncompressedSize) uncompressed")
            }
            out = Array(a[start..<start + compressedSize])
        case 8:
            do {
                out = try a.withUnsafeBytes { raw in
                    try inflate(UnsafeRawBufferPointer(rebasing: raw[start..<start + compressedSize]), expectedSize: uncompressedSize)
                }
            } catch let e as InflateError {
                throw ZipError("entry \(name): \(e.message)")
            }
        default:
            throw ZipError("entry \(name): compression method \(method) is not supported (only stored and deflate)")
        }
        let got = crc32(out)
        if got != crc {
            throw ZipError(String(format: "entry %@: CRC-32 is %08x, the archive says %08x (damaged file)", name, got, crc))
        }
        return out
    }
}

/// A zip archive held in memory.
public struct ZipArchive {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The entries listed by the central directory, in its order.
    /// - Throws: `ZipError` when the archive has no (valid) end-of-central-directory record.
    public func entries() throws -> [ZipEntry] {
        let a = bytes
        // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
        var eocd = -1
        var i = a.count - 22
        while i >= max(0, a.count - 22 - 65535) {
            if readU32(a, i) == 0x0605_4b50 {
                eocd = i
                break
            }
            i -= 1
        }
        if eocd < 0 { throw ZipError("not a zip archive (no end-of-central-directory record)") }
        var count = Int(readU16(a, eocd + 10))
        var cdSize = Int(readU32(a, eocd + 12))
        var cdOffset = Int(readU32(a, eocd + 16))
        // zip64: a locator just before the record points at the zip64 record with 64-bit fields.
        if eocd >= 20, readU32(a, eocd - 20) == 0x0706_4b50 {
            let z = Int(truncatingIfNeeded: readU64(a, eocd - 12))
            guard z >= 0, z + 56 <= a.count, readU32(a, z) == 0x0606_4b50 else {
                throw ZipError("the zip64 end-of-central-directory record is missing or damaged")
            }
            guard let n = Int(exactly: readU64(a, z + 32)), let size = Int(exactly: readU64(a, z + 40)),
                  let offset = Int(exactly: readU64(a, z + 48)) else {
                throw ZipError("the zip64 end-of-central-directory record holds sizes that do not fit in an Int")
            }
            count = n
            cdSize = size
            cdOffset = offset
        }
        guard cdOffset >= 0, cdSize >= 0, cdOffset + cdSize <= a.count else {
            throw ZipError("the central directory (\(cdSize) bytes at \(cdOffset)) lies outside the \(a.count)-byte archive")
        }
        var out: [ZipEntry] = []
        var p = cdOffset
        for k in 0..<count {
            guard p + 46 <= a.count, readU32(a, p) == 0x0201_4b50 else {
                throw ZipError("central directory entry \(k) is damaged")
            }
            let flags = readU16(a, p + 8)
            if flags & 1 != 0 { throw ZipError("entry \(k) is encrypted") }
            let method = Int(readU16(a, p + 10))
            let crc = readU32(a, p + 16)
            var compressed = UInt64(readU32(a, p + 20))
            var uncompressed = UInt64(readU32(a, p + 24))
            let nameLength = Int(readU16(a, p + 28))
            let extraLength = Int(readU16(a, p + 30))
            let commentLength = Int(readU16(a, p + 32))
            var offset = UInt64(readU32(a, p + 42))
            guard p + 46 + nameLength + extraLength <= a.count else { throw ZipError("central directory entry \(k) is truncated") }
            let name = String(decoding: a[p + 46..<p + 46 + nameLength], as: UTF8.self)
            // The zip64 extra field (id 1) holds, in this order, each field that is 0xffffffff above.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = readU16(a, e)
                let size = Int(readU16(a, e + 2))
                if id == 1 {
                    var q = e + 4
                    for field in 0..<3 {
                        let wide = field == 0 ? uncompressed == 0xffff_ffff : field == 1 ? compressed == 0xffff_ffff : offset == 0xffff_ffff
                        if !wide { continue }
                        guard q + 8 <= e + 4 + size else { throw ZipError("entry \(name): its zip64 extra field is short") }
                        let v = readU64(a, q)
                        q += 8
                        if field == 0 { uncompressed = v } else if field == 1 { compressed = v } else { offset = v }
                    }
                }
                e += 4 + size
            }
            guard let c = Int(exactly: compressed), let u = Int(exactly: uncompressed), let o = Int(exactly: offset) else {
                throw ZipError("entry \(name): a size or offset does not fit in an Int")
            }
            out.append(ZipEntry(name: name, method: method, crc: crc, compressedSize: c, uncompressedSize: u,
                                localHeaderOffset: o, archive: a))
            p += 46 + nameLength + extraLength + commentLength
        }
        return out
    }
}

@inline(__always) func readU16(_ a: [UInt8], _ p: Int) -> UInt16 {
    guard p >= 0, p + 2 <= a.count else { return 0 }
    return UInt16(a[p]) | UInt16(a[p + 1]) << 8
}

@inline(__always) func readU32(_ a: [UInt8], _ p: Int) -> UInt32 {
    guard p >= 0, p + 4 <= a.count else { return 0 }
    return UInt32(a[p]) | UInt32(a[p + 1]) << 8 | UInt32(a[p + 2]) << 16 | UInt32(a[p + 3]) << 24
}

@inline(__always) func readU64(_ a: [UInt8], _ p: Int) -> UInt64 {
    UInt64(readU32(a, p)) | UInt64(readU32(a, p + 4)) << 32
}
