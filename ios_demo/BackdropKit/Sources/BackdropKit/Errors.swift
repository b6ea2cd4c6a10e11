// The errors BackdropKit throws. Each message says what is wrong and, where it can, what to do.
import Foundation

/// A camera buffer, frame size, placement or model output the Python reference would reject
/// too (its `FrameError` / `BucketError`), or one that does not fit what it is used with.
public struct PreprocessError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// The manifest cannot be used: unreadable, not JSON, an unknown schema MAJOR, or a field
/// missing or wrong (docs/manifest.md is the contract).
public struct ManifestError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// A .npy / .npz file that cannot be read (or an array of another dtype or shape than asked).
public struct NpyError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
