"""Writes the fixtures InflateTests and NpyTests read (run from the repository root with the
project's venv: `.venv/bin/python ios_demo/BackdropKit/Tests/BackdropKitTests/Fixtures/make_fixtures.py`).

inflate-cases.npz (np.savez_compressed, zip64 local headers as NumPy writes them):
  raw_NN      uint8  the original bytes
  deflate_NN  uint8  Python's zlib raw deflate stream of them (wbits < 0, no header)
  about       str    one line per case: what block types / strategy it exercises
dtypes.npz (np.savez: stored entries): one array per dtype BackdropKit reads.
Deterministic (seeded), so re-running it gives byte-identical files.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def deflate(data: bytes, level: int = 6, wbits: int = -15, mem: int = 8, strategy: int = zlib.Z_DEFAULT_STRATEGY,
            flushes: int = 0) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, wbits, mem, strategy)
    if not flushes:
        return c.compress(data) + c.flush()
    out, step = [], max(1, len(data) // (flushes + 1))
    for k in range(0, len(data), step):
        out.append(c.compress(data[k:k + step]))
        out.append(c.flush(zlib.Z_SYNC_FLUSH if (k // step) % 2 else zlib.Z_FULL_FLUSH))
    out.append(c.flush())
    return b"".join(out)


def main() -> None:
    rng = np.random.default_rng(20261203)
    words = [b"person", b"segmentation", b"bucket", b"mask", b"frame", b"\n", b" ", b"Core ML", b"state"]
    text = b"".join(words[i] for i in rng.integers(0, len(words), 12000))
    skewed = np.minimum(rng.geometric(0.08, 20000), 255).astype(np.uint8).tobytes()  # rare symbols: codes > 10 bits
    runs = b"".join(bytes([int(v)]) * int(n) for v, n in zip(rng.integers(0, 256, 800), rng.integers(1, 300, 800)))
    cases = [
        ("empty input", b"", {}),
        ("one byte", b"a", {}),
        ("random bytes, level 6 (zlib falls back to stored blocks)", rng.integers(0, 256, 6000, np.uint8).tobytes(), {}),
        ("level 0: stored blocks only (several)", rng.integers(0, 256, 40000, np.uint8).tobytes(), {"level": 0}),
        ("text, level 9, dynamic Huffman blocks", text, {"level": 9}),
        ("text, Z_FIXED: fixed Huffman blocks", text[:20000], {"strategy": zlib.Z_FIXED}),
        ("skewed bytes, Z_HUFFMAN_ONLY: long codes, no matches", skewed, {"strategy": zlib.Z_HUFFMAN_ONLY}),
        ("runs, Z_RLE: distance-1 matches", runs, {"strategy": zlib.Z_RLE}),
        ("text, 512-byte window (wbits -9)", text[:30000], {"wbits": -9, "level": 9}),
        ("zeros: 258-byte overlapping matches", bytes(100000), {}),
        ("text with full and sync flushes (empty stored blocks)", text[:30000], {"flushes": 6}),
        ("skewed bytes, memLevel 1: many small blocks", skewed[:12000], {"mem": 1, "level": 1}),
        ("float32 mask-like data, level 6", (rng.random(3000, dtype=np.float32) ** 4).astype("<f4").tobytes(), {}),
    ]
    arrays = {}
    for k, (_, data, kw) in enumerate(cases):
        stream = deflate(data, **kw)
        assert zlib.decompress(stream, -15) == data
        arrays[f"raw_{k:02d}"] = np.frombuffer(data, np.uint8)
        arrays[f"deflate_{k:02d}"] = np.frombuffer(stream, np.uint8)
    arrays["about"] = np.array([about for about, _, _ in cases])
    np.savez_compressed(HERE / "inflate-cases.npz", **arrays)
    np.savez(
        HERE / "dtypes.npz",
        f4=np.array([[0.0, -0.0, 1.5], [np.float32(1) / np.float32(255), 3.4028235e38, -1e-45]], "<f4"),
        f2=np.array([0.0, 1.0, 65504.0, 2.0 ** -24, -0.5], "<f2"),
        i8=np.array([0, 1, -1, 2**62, -(2**63)], "<i8"),
        b1=np.array([True, False, True]),
        u1=np.arange(256, dtype=np.uint8).reshape(16, 16),
        scalar=np.array("backdrop-golden/1"),
        names=np.array(["frame_00000", "é", "∑x"]),
    )


if __name__ == "__main__":
    main()
