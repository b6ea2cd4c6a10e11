// Proof that the compiler does not fuse the resize's `a + f * (b - a)` (or the feather's
// `t * 255 + 0.5`) into one fused multiply-add, which rounds once where the Python reference
// rounds twice: BackdropKit's sources are compiled here with `swiftc -O -wmo -emit-ir`, as a
// release build compiles them, and the LLVM IR must have no fast-math flag (`contract`, `fast`,
// ...) on any float operation and no `llvm.fma` / `llvm.fmuladd` call. Contraction is decided
// by those flags and intrinsics before code generation, for every target (arm64 included), so
// none in the IR means no fma in the machine code. On x86_64 the module is also compiled to
// assembly for a CPU that has FMA (Haswell) and must contain no vfmadd-family instruction.
import Foundation
import XCTest

final class FusedMultiplyAddTests: XCTestCase {
    /// swiftc, and the arguments that come before its own (xcrun on macOS).
    private func swiftc() throws -> (URL, [String]) {
        let env = ProcessInfo.processInfo.environment
        if let path = env["SWIFTC"], !path.isEmpty { return (URL(fileURLWithPath: path), []) }
        #if os(macOS)
        return (URL(fileURLWithPath: "/usr/bin/xcrun"), ["swiftc"])
        #else
        for dir in (env["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("swiftc")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return (candidate, []) }
        }
        XCTFail("no swiftc on PATH (set SWIFTC to the compiler that builds BackdropKit)")
        throw CocoaError(.fileNoSuchFile)
        #endif
    }

    /// Compiles BackdropKit's sources with `flags`; returns the output file's text.
    private func compile(_ flags: [String], suffix: String) throws -> String {
        let sources = packageRoot.appendingPathComponent("Sources/BackdropKit")
        let files = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { $0.hasSuffix(".swift") }.sorted()
        XCTAssertTrue(files.contains("Resize.swift") && files.contains("Alpha.swift"), "\(files)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("backdropkit-fma-\(getpid())\(suffix)")
        defer { try? FileManager.default.removeItem(at: out) }
        let (tool, lead) = try swiftc()
        let p = Process()
        p.executableURL = tool
        p.arguments = lead + ["-O", "-wmo", "-parse-as-library", "-module-name", "BackdropKit"] + flags
            + files.map { sources.appendingPathComponent($0).path } + ["-o", out.path]
        let errors = Pipe()
        p.standardError = errors
        try p.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "swiftc \(flags.joined(separator: " ")) failed: \(String(decoding: stderr, as: UTF8.self))")
        return try String(contentsOf: out, encoding: .utf8)
    }

    func testTheOptimizedIRHasNoContractedFloatOperations() throws {
        let ir = try compile(["-emit-ir"], suffix: ".ll")
        let lines = ir.split(separator: "\n")
        let op = try NSRegularExpression(pattern: #"=\s+(fadd|fsub|fmul|fdiv)\s+([a-z ]*?)\s*(float|double|half|<)"#)
        var operations = 0
        var flagged: [String] = []
        for line in lines {
            let s = String(line)
            guard let m = op.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)),
                  let flags = Range(m.range(at: 2), in: s) else { continue }
            operations += 1
            if !s[flags].trimmingCharacters(in: .whitespaces).isEmpty { flagged.append(s.trimmingCharacters(in: .whitespaces)) }
        }
        XCTAssertTrue(flagged.isEmpty, "float operations with fast-math flags (the compiler may contract them): \(flagged.prefix(5))")
        let fused = lines.filter { $0.contains("llvm.fma.") || $0.contains("llvm.fmuladd.") }
        XCTAssertTrue(fused.isEmpty, "fused multiply-adds in the IR: \(fused.prefix(5))")
        // Not vacuous: the resize's multiplies and adds are in the IR, as separate instructions.
        guard let start = ir.range(of: #"\ndefine [^\n]*14resizeBilinear_3inH[^\n]*"#, options: .regularExpression) else {
            return XCTFail("resizeBilinear is not in the IR")
        }
        let body = ir[start.lowerBound...].components(separatedBy: "\n}\n").first ?? ""
        XCTAssertTrue(body.contains("fmul float") || body.contains("fmul <"), "resizeBilinear's IR has no fmul")
        XCTAssertTrue(body.contains("fadd float") || body.contains("fadd <"), "resizeBilinear's IR has no fadd")
        print("FusedMultiplyAddTests: \(operations) float operations in BackdropKit's -O IR, none flagged, no fma / fmuladd")
    }

    #if arch(x86_64) && os(Linux)
    func testNoFusedMultiplyAddOnACPUThatHasIt() throws {
        let asm = try compile(["-S", "-Xcc", "-march=haswell"], suffix: ".s")
        XCTAssertTrue(asm.contains("%ymm"), "the Haswell build should use AVX registers (else -march did not apply)")
        let fused = asm.split(separator: "\n").filter { $0.range(of: #"\bv?f(n)?m(add|sub)"#, options: .regularExpression) != nil }
        XCTAssertTrue(fused.isEmpty, "fused multiply-add instructions: \(fused.prefix(5))")
    }
    #endif
}
