// Raw DEFLATE decompression (RFC 1951) and CRC-32, in Swift with no dependency: the goldens are
// .npz files (`np.savez_compressed`, zip entries compressed with deflate), Foundation on Linux
// has no zip or zlib API, and the Swift root has no zlib headers. Decoding is table driven (a
// 10-bit first-level table per Huffman code, canonical decoding bit by bit for longer codes).
// InflateTests holds it to Python's zlib on fixtures of every block type and strategy.
import Foundation

/// A deflate stream that is malformed or does not decompress to the size its container says.
public struct InflateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// CRC-32 (ISO-HDLC, zlib's `crc32`) of `bytes`.
public func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    crcTable.withUnsafeBufferPointer { table in
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
    }
    return c ^ 0xffff_ffff
}

/// CRC-32 of an array.
public func crc32(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { crc32($0) } }

private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

private let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                                 131, 163, 195, 227, 258]
private let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
private let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                                   2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
private let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                                    13, 13]
private let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

private let fastBits = 10

/// A canonical Huffman code: a first-level table for codes up to `fastBits` long, and the
/// counts / sorted symbols for the rest.
private struct Huffman {
    /// (symbol << 4) | length for codes of up to fastBits bits; 0: a longer code.
    var fast = [UInt16](repeating: 0, count: 1 << fastBits)
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int] = []

    init(lengths: ArraySlice<Int>, what: String) throws {
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1...15 {
            left <<= 1
            left -= counts[len]
            if left < 0 { throw InflateError("deflate stream: the \(what) code is over-subscribed") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        symbols = [Int](repeating: 0, count: lengths.count)
        for (i, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[l]] = i
            offsets[l] += 1
        }
        // Canonical codes (RFC 1951 3.2.2), entered bit-reversed: deflate sends a Huffman code's
        // most significant bit first, and the bit buffer hands out the least significant first.
        var nextCode = [Int](repeating: 0, count: 16)
        var c = 0
        for len in 1...15 {
            nextCode[len] = c
            c = (c + counts[len]) << 1
        }
        for (sym, l) in lengths.enumerated() where l != 0 && l <= fastBits {
            let cv = nextCode[l]
            nextCode[l] += 1
            var rev = 0
            for b in 0..<l where (cv >> b) & 1 != 0 { rev |= 1 << (l - 1 - b) }
            var k = rev
            while k < (1 << fastBits) {
                fast[k] = UInt16(sym << 4 | l)
                k += 1 << l
            }
        }
    }
}

/// Decompresses a raw deflate stream (no zlib or gzip header) that must inflate to exactly
/// `expectedSize` bytes (a zip entry's uncompressed size).
/// - Throws: `InflateError` for a malformed stream, one that ends early, or one of another size.
public func inflate(_ input: UnsafeRawBufferPointer, expectedSize: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: expectedSize)
    let written = try out.withUnsafeMutableBufferPointer { o -> Int in
        var d = Inflater(input: input, out: o)
        try d.run()
        return d.outPos
    }
    if written != expectedSize {
        throw InflateError("deflate stream inflates to \(written) bytes; its container says \(expectedSize)")
    }
    return out
}

/// `inflate` of an array.
public func inflate(_ input: [UInt8], expectedSize: Int) throws -> [UInt8] {
    try input.withUnsafeBytes { try inflate($0, expectedSize: expectedSize) }
}

private struct Inflater {
    let input: UnsafeRawBufferPointer
    let out: UnsafeMutableBufferPointer<UInt8>
    var inPos = 0
    var outPos = 0
    var bits: UInt64 = 0
    var bitCount = 0
    var overrun = 0  // bytes of zeros fed in past the end of the input

    init(input: UnsafeRawBufferPointer, out: UnsafeMutableBufferPointer<UInt8>) {
        self.input = input
        self.out = out
    }

    @inline(__always) mutating func refill() {
        while bitCount <= 56 {
            var byte: UInt64 = 0
            if inPos < input.count {
                byte = UInt64(input[inPos])
                inPos += 1
            } else {
                overrun += 1
            }
            bits |= byte << UInt64(bitCount)
            bitCount += 8
        }
    }

    @inline(__always) mutating func take(_ n: Int) throws -> Int {
        if bitCount < n { refill() }
        let v = Int(bits & ((1 << UInt64(n)) - 1))
        bits >>= UInt64(n)
        bitCount -= n
        try checkOverrun()
        return v
    }

    @inline(__always) func checkOverrun() throws {
        // Bits handed out beyond the real input are an error (padding bits were never consumed).
        if overrun > 0 && bitCount < overrun * 8 {
            throw InflateError("deflate stream ends in the middle of a block (truncated input)")
        }
    }

    mutating func decode(_ h: Huffman) throws -> Int {
        if bitCount < 15 { refill() }
        let entry = Int(h.fast[Int(bits & UInt64((1 << fastBits) - 1))])
        if entry != 0 {
            let len = entry & 15
            bits >>= UInt64(len)
            bitCount -= len
            try checkOverrun()
            return entry >> 4
        }
        // A code longer than fastBits: canonical decoding bit by bit (RFC 1951 3.2.2).
        var code = 0, first = 0, index = 0
        for len in 1...15 {
            code |= Int(bits & 1)
            bits >>= 1
            bitCount -= 1
            let count = h.counts[len]
            if code - first < count {
                try checkOverrun()
                return h.symbols[index + code - first]
            }
            index += count
            first += count
            first <<= 1
            code <<= 1
        }
        throw InflateError("deflate stream has an invalid Huffman code")
    }

    mutating func run() throws {
        var last = false
        while !last {
            last = try take(1) == 1
            switch try take(2) {
            case 0: try stored()
            case 1: try codes(Inflater.fixedLiteral, Inflater.fixedDistance)
            case 2:
                let (lit, dist) = try dynamicTables()
                try codes(lit, dist)
            default: throw InflateError("deflate stream has a block of the reserved type 3")
            }
        }
    }

    mutating func stored() throws {
        // Drop to a byte boundary, then give back the whole bytes still in the bit buffer.
        let drop = bitCount & 7
        bits >>= UInt64(drop)
        bitCount -= drop
        try checkOverrun()
        let real = bitCount / 8 - overrun
        inPos -= real
        bits = 0
        bitCount = 0
        overrun = 0
        if input.count - inPos < 4 { throw InflateError("deflate stream ends inside a stored block's header") }
        let len = Int(input[inPos]) | Int(input[inPos + 1]) << 8
        let nlen = Int(input[inPos + 2]) | Int(input[inPos + 3]) << 8
        inPos += 4
        if len != (~nlen & 0xffff) { throw InflateError("deflate stream: a stored block's length check fails") }
        if input.count - inPos < len { throw InflateError("deflate stream ends inside a stored block") }
        if out.count - outPos < len { throw InflateError("deflate stream inflates to more than \(out.count) bytes") }
        for i in 0..<len { out[outPos + i] = input[inPos + i] }
        inPos += len
        outPos += len
    }

    static let fixedLiteral: Huffman = {
        var l = [Int](repeating: 8, count: 288)
        for i in 144..<256 { l[i] = 9 }
        for i in 256..<280 { l[i] = 7 }
        return try! Huffman(lengths: l[...], what: "fixed literal/length")
    }()

    static let fixedDistance: Huffman = try! Huffman(lengths: [Int](repeating: 5, count: 30)[...], what: "fixed distance")

    mutating func dynamicTables() throws -> (Huffman, Huffman) {
        let nlen = try take(5) + 257
        let ndist = try take(5) + 1
        let ncode = try take(4) + 4
        if nlen > 286 || ndist > 30 { throw InflateError("deflate stream: a dynamic block has too many codes") }
        var cl = [Int](repeating: 0, count: 19)
        for i in 0..<ncode { cl[codeLengthOrder[i]] = try take(3) }
        let clCode = try Huffman(lengths: cl[...], what: "code length")
        var lengths = [Int](repeating: 0, count: nlen + ndist)
        var i = 0
        while i < nlen + ndist {
            let sym = try decode(clCode)
            if sym < 16 {
                lengths[i] = sym
                i += 1
                continue
            }
            var value = 0
            var repeats: Int
            switch sym {
            case 16:
                if i == 0 { throw InflateError("deflate stream: a length repeat with no previous length") }
                value = lengths[i - 1]
                repeats = 3 + (try take(2))
            case 17: repeats = 3 + (try take(3))
            default: repeats = 11 + (try take(7))
            }
            if i + repeats > nlen + ndist { throw InflateError("deflate stream: code lengths overflow the block's codes") }
            for _ in 0..<repeats {
                lengths[i] = value
                i += 1
            }
        }
        if lengths[256] == 0 { throw InflateError("deflate stream: a dynamic block has no end-of-block code") }
        return (try Huffman(lengths: lengths[0..<nlen], what: "literal/length"),
                try Huffman(lengths: lengths[nlen...], what: "distance"))
    }

    mutating func codes(_ lit: Huffman, _ dist: Huffman) throws {
        while true {
            let sym = try decode(lit)
            if sym < 256 {
                if outPos >= out.count { throw InflateError("deflate stream inflates to more than \(out.count) bytes") }
                out[outPos] = UInt8(sym)
                outPos += 1
                continue
            }
            if sym == 256 { return }
            let li = sym - 257
            if li >= 29 { throw InflateError("deflate stream has an invalid length code \(sym)") }
            let length = lengthBase[li] + (try take(lengthExtra[li]))
            let di = try decode(dist)
            if di >= 30 { throw InflateError("deflate stream has an invalid distance code \(di)") }
            let distance = distanceBase[di] + (try take(distanceExtra[di]))
            if distance > outPos { throw InflateError("deflate stream refers \(distance) bytes back, before its start") }
            if out.count - outPos < length { throw InflateError("deflate stream inflates to more than \(out.count) bytes") }
            var from = outPos - distance
            for _ in 0..<length {  // byte by byte: the source may overlap the bytes being written
                out[outPos] = out[from]
                outPos += 1
                from += 1
            }
        }
    }
}
