// The camera-buffer preprocessing of the phone pipeline in C++17, bit for bit the Python
// reference (backdrop/core/frames.py, backdrop/core/buckets.py, models/reference.py
// bucket_input; the rules are docs/frames.md and docs/buckets.md):
//
//   camera buffer (NV21 / NV12 with row stride, I420) --to_yuv444--> uint8 (H, W, 3) Y, Cb, Cr,
//   full range (video range expanded by the 256-entry tables) --plan--> placement in the bucket
//   --model_input--> float32 (3, Hb, Wb): value / 255 in float32, bilinear resize (float32, each
//   operation rounded on its own), replicate padding, channel-first
//   bucket mask float32 (Hb, Wb) --from_bucket--> crop + bilinear resize to (H, W).
//
// Integer rules use int64 (floor division where numerators can be negative); the float rules
// are the float32 operations of the reference in its order. preprocess.cpp must be compiled
// without floating-point contraction (-ffp-contract=off, set in CMakeLists.txt): a fused
// multiply-add in `a + f * (b - a)` would round once instead of twice.
//
// No dependencies beyond the standard library. Bad input (a buffer of the wrong size, a stride
// too small, sizes out of range) throws PreprocessError with a message naming the rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace backdrop::pre {

// A buffer, size or placement the reference would reject (its FrameError / BucketError).
class PreprocessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Layout : uint32_t { kNV21 = 0, kNV12 = 1, kI420 = 2 };
enum class ColorRange : uint32_t { kFull = 0, kVideo = 1 };

const char* layout_name(Layout layout);       // "NV21", "NV12", "I420"
const char* range_name(ColorRange range);     // "full", "video"

constexpr int64_t kMaxFrameSide = 65536;   // buckets.py MAX_FRAME_SIDE
constexpr int64_t kMaxBucketSide = 4096;   // buckets.py MAX_BUCKET_SIDE

// Bytes a camera buffer of this layout and size has (row_stride 0: packed rows). Throws
// PreprocessError for a bad size or a stride below 2 * ceil(width / 2) (NV21 / NV12; I420: below
// width, its U and V rows then taking ceil(row_stride / 2) bytes).
size_t camera_buffer_size(Layout layout, int64_t width, int64_t height, int64_t row_stride);

// Camera buffer -> uint8 (height, width, 3) Y, Cb, Cr, full range (frames.py nv21_to_yuv,
// nv12_to_yuv, i420_to_yuv). `out` is resized to height * width * 3. Throws PreprocessError when
// `size` is not camera_buffer_size(...).
void to_yuv444(const uint8_t* buf, size_t size, Layout layout, int64_t width, int64_t height, int64_t row_stride,
               ColorRange range, std::vector<uint8_t>& out);

// buckets.py Placement (sizes are height x width).
struct Placement {
  int64_t src_height = 0, src_width = 0;
  int64_t bucket_height = 0, bucket_width = 0;
  int64_t scaled_height = 0, scaled_width = 0;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
};

// buckets.py plan(): the largest aspect-preserving fit, centred, in exact integers.
Placement plan(int64_t src_height, int64_t src_width, int64_t bucket_height, int64_t bucket_width);

// buckets.py resize_bilinear on float32 (in_h, in_w, channels) interleaved data -> `out`
// (out_h, out_w, channels), resized to fit.
void resize_bilinear(const float* in, int64_t in_h, int64_t in_w, int64_t channels, int64_t out_h, int64_t out_w,
                     std::vector<float>& out);

// models/reference.py bucket_input(...)[0, :3]: uint8 YUV444 (src_height, src_width, 3) ->
// float32 (3, bucket_height, bucket_width): to_bucket(yuv.astype(float32) / 255, placement),
// channel-first. `out` is resized to fit.
void model_input(const uint8_t* yuv444, const Placement& p, std::vector<float>& out);

// buckets.py from_bucket: float32 (bucket_height, bucket_width) mask -> (src_height, src_width).
void from_bucket(const float* mask, const Placement& p, std::vector<float>& out);

}  // namespace backdrop::pre
