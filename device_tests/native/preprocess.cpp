// See preprocess.h. Each function names the Python function it reproduces; keep the float32
// operations in the reference's order (docs/buckets.md "Resize").
#include "preprocess.h"

#include <algorithm>
#include <array>

#ifdef __FAST_MATH__
#error "preprocess.cpp must not be built with -ffast-math: the resize is specified operation by operation"
#endif

namespace backdrop::pre {
namespace {

// floor(num / den) for den > 0 and any sign of num (C++ `/` truncates toward zero).
int64_t floor_div(int64_t num, int64_t den) {
  const int64_t q = num / den;
  return (num % den != 0 && num < 0) ? q - 1 : q;
}

// floor(num / den + 1/2), frames.py _round_half_up_div.
int64_t round_half_up_div(int64_t num, int64_t den) { return floor_div(2 * num + den, 2 * den); }

uint8_t clamp_u8(int64_t v) { return static_cast<uint8_t>(std::min<int64_t>(std::max<int64_t>(v, 0), 255)); }

struct VideoLuts {
  std::array<uint8_t, 256> y{}, c{};
  VideoLuts() {
    for (int64_t v = 0; v < 256; ++v) {
      y[v] = clamp_u8(round_half_up_div((v - 16) * 255, 219));              // (Y - 16) * 255 / 219
      c[v] = clamp_u8(round_half_up_div((v - 128) * 255 + 128 * 224, 224));  // (C - 128) * 255 / 224 + 128
    }
  }
};

const VideoLuts& video_luts() {
  static const VideoLuts luts;
  return luts;
}

void check_frame_side(const char* label, int64_t v) {
  if (v < 1 || v > kMaxFrameSide)
    throw PreprocessError(std::string("frame ") + label + " " + std::to_string(v) + " is not between 1 and " +
                          std::to_string(kMaxFrameSide));
}

// buckets.py _axis_taps: source indices i0, i1 and float32 weight f of each output index.
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> f;
};

Taps axis_taps(int64_t n_in, int64_t n_out) {
  Taps t;
  t.i0.resize(n_out);
  t.i1.resize(n_out);
  t.f.resize(n_out);
  const int64_t den = 2 * n_out;
  for (int64_t d = 0; d < n_out; ++d) {
    int64_t num = (2 * d + 1) * n_in - n_out;
    if (num < 0) num = 0;
    int64_t i0 = num / den;
    const int64_t rem = num - i0 * den;
    float f = static_cast<float>(rem) / static_cast<float>(den);  // one float32 division, both exact
    if (i0 >= n_in - 1) {
      i0 = n_in - 1;
      f = 0.0f;
    }
    t.i0[d] = i0;
    t.i1[d] = std::min(i0 + 1, n_in - 1);
    t.f[d] = f;
  }
  return t;
}

}  // namespace

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::kNV21: return "NV21";
    case Layout::kNV12: return "NV12";
    case Layout::kI420: return "I420";
  }
  return "?";
}

const char* range_name(ColorRange range) { return range == ColorRange::kVideo ? "video" : "full"; }

size_t camera_buffer_size(Layout layout, int64_t width, int64_t height, int64_t row_stride) {
  check_frame_side("width", width);
  check_frame_side("height", height);
  const int64_t cw = (width + 1) / 2, ch = (height + 1) / 2;
  if (row_stride == 0) return static_cast<size_t>(width * height + 2 * cw * ch);
  if (layout == Layout::kI420) {  // Y rows of row_stride bytes, U and V rows of ceil(row_stride / 2)
    if (row_stride < width)
      throw PreprocessError("row_stride " + std::to_string(row_stride) + " is too small for an I420 frame of width " +
                            std::to_string(width) + ": each Y row needs at least " + std::to_string(width) + " bytes");
    return static_cast<size_t>(row_stride * height + 2 * ((row_stride + 1) / 2) * ch);
  }
  if (row_stride < 2 * cw)
    throw PreprocessError("row_stride " + std::to_string(row_stride) + " is too small for a " + layout_name(layout) +
                          " frame of width " + std::to_string(width) + ": each row needs at least " +
                          std::to_string(2 * cw) + " bytes");
  return static_cast<size_t>(row_stride * height + row_stride * ch);
}

// frames.py _semi_planar_to_yuv / i420_to_yuv, then _expand.
void to_yuv444(const uint8_t* buf, size_t size, Layout layout, int64_t width, int64_t height, int64_t row_stride,
               ColorRange range, std::vector<uint8_t>& out) {
  const size_t expected = camera_buffer_size(layout, width, height, row_stride);
  if (size != expected)
    throw PreprocessError(std::string(layout_name(layout)) + " buffer for a " + std::to_string(width) + "x" +
                          std::to_string(height) + " (width x height) frame with " +
                          (row_stride ? "row_stride " + std::to_string(row_stride) : std::string("no row padding")) +
                          " must be " + std::to_string(expected) + " bytes; got " + std::to_string(size));
  const int64_t w = width, h = height, cw = (w + 1) / 2;
  out.resize(static_cast<size_t>(w * h * 3));
  const uint8_t* y_plane = buf;
  const uint8_t *cb_base, *cr_base;  // sample (r, c) at base[r * c_stride + c * c_step]
  int64_t y_stride, c_stride, c_step;
  if (layout == Layout::kI420) {
    const int64_t ch = (h + 1) / 2;
    y_stride = row_stride ? row_stride : w;
    c_stride = row_stride ? (row_stride + 1) / 2 : cw;
    c_step = 1;
    cb_base = buf + y_stride * h;
    cr_base = cb_base + c_stride * ch;
  } else {
    y_stride = row_stride ? row_stride : w;
    c_stride = row_stride ? row_stride : 2 * cw;
    c_step = 2;
    const uint8_t* c_plane = buf + y_stride * h;
    // NV21: V, U pairs; NV12: U, V pairs.
    cb_base = layout == Layout::kNV21 ? c_plane + 1 : c_plane;
    cr_base = layout == Layout::kNV21 ? c_plane : c_plane + 1;
  }
  const bool video = range == ColorRange::kVideo;
  const auto& luts = video_luts();
  for (int64_t r = 0; r < h; ++r) {
    const uint8_t* yrow = y_plane + r * y_stride;
    const uint8_t* cbrow = cb_base + (r / 2) * c_stride;
    const uint8_t* crrow = cr_base + (r / 2) * c_stride;
    uint8_t* o = out.data() + r * w * 3;
    for (int64_t c = 0; c < w; ++c) {  // nearest chroma: sample (r / 2, c / 2)
      const uint8_t yv = yrow[c], u = cbrow[(c / 2) * c_step], v = crrow[(c / 2) * c_step];
      o[3 * c + 0] = video ? luts.y[yv] : yv;
      o[3 * c + 1] = video ? luts.c[u] : u;
      o[3 * c + 2] = video ? luts.c[v] : v;
    }
  }
}

// buckets.py plan.
Placement plan(int64_t src_height, int64_t src_width, int64_t bucket_height, int64_t bucket_width) {
  check_frame_side("height", src_height);
  check_frame_side("width", src_width);
  if (bucket_height < 1 || bucket_height > kMaxBucketSide || bucket_width < 1 || bucket_width > kMaxBucketSide)
    throw PreprocessError("bucket " + std::to_string(bucket_height) + "x" + std::to_string(bucket_width) +
                          " is not within 1..4096 on each side");
  const int64_t h = src_height, w = src_width, hb = bucket_height, wb = bucket_width;
  auto round_div = [](int64_t num, int64_t den) { return (2 * num + den) / (2 * den); };  // num >= 0
  Placement p;
  p.src_height = h;
  p.src_width = w;
  p.bucket_height = hb;
  p.bucket_width = wb;
  if (hb * w <= wb * h) {  // height limits the scale
    p.scaled_height = hb;
    p.scaled_width = std::min<int64_t>(std::max<int64_t>(round_div(w * hb, h), 1), wb);
  } else {
    p.scaled_width = wb;
    p.scaled_height = std::min<int64_t>(std::max<int64_t>(round_div(h * wb, w), 1), hb);
  }
  p.pad_top = (hb - p.scaled_height) / 2;
  p.pad_bottom = hb - p.scaled_height - p.pad_top;
  p.pad_left = (wb - p.scaled_width) / 2;
  p.pad_right = wb - p.scaled_width - p.pad_left;
  return p;
}

// buckets.py resize_bilinear: rows first, `a + fx * (b - a)` then `t0 + fy * (t1 - t0)`, each
// float32 operation rounded on its own (no contraction: see CMakeLists.txt).
void resize_bilinear(const float* in, int64_t in_h, int64_t in_w, int64_t channels, int64_t out_h, int64_t out_w,
                     std::vector<float>& out) {
  if (in_h < 1 || in_w < 1 || channels < 1) throw PreprocessError("resize_bilinear needs a non-empty image");
  check_frame_side("height", out_h);
  check_frame_side("width", out_w);
  const Taps ty = axis_taps(in_h, out_h), tx = axis_taps(in_w, out_w);
  const int64_t C = channels;
  std::vector<float> rows(static_cast<size_t>(in_h * out_w * C));  // (in_h, out_w, C)
  for (int64_t r = 0; r < in_h; ++r) {
    const float* src = in + r * in_w * C;
    float* dst = rows.data() + r * out_w * C;
    for (int64_t j = 0; j < out_w; ++j) {
      const float fx = tx.f[j];
      const float* a = src + tx.i0[j] * C;
      const float* b = src + tx.i1[j] * C;
      for (int64_t k = 0; k < C; ++k) {
        const float diff = b[k] - a[k];
        const float step = fx * diff;
        dst[j * C + k] = a[k] + step;
      }
    }
  }
  out.resize(static_cast<size_t>(out_h * out_w * C));
  for (int64_t i = 0; i < out_h; ++i) {
    const float fy = ty.f[i];
    const float* t0 = rows.data() + ty.i0[i] * out_w * C;
    const float* t1 = rows.data() + ty.i1[i] * out_w * C;
    float* dst = out.data() + i * out_w * C;
    for (int64_t j = 0; j < out_w * C; ++j) {
      const float diff = t1[j] - t0[j];
      const float step = fy * diff;
      dst[j] = t0[j] + step;
    }
  }
}

// models/reference.py bucket_input: to_bucket(yuv.astype(float32) / 255.0, placement), CHW.
void model_input(const uint8_t* yuv444, const Placement& p, std::vector<float>& out) {
  const int64_t h = p.src_height, w = p.src_width, hb = p.bucket_height, wb = p.bucket_width;
  std::vector<float> scaled01(static_cast<size_t>(h * w * 3));
  for (size_t i = 0; i < scaled01.size(); ++i) scaled01[i] = static_cast<float>(yuv444[i]) / 255.0f;
  std::vector<float> scaled;
  resize_bilinear(scaled01.data(), h, w, 3, p.scaled_height, p.scaled_width, scaled);
  out.resize(static_cast<size_t>(3 * hb * wb));
  const int64_t sh = p.scaled_height, sw = p.scaled_width;
  for (int64_t y = 0; y < hb; ++y) {
    const int64_t sy = std::min(std::max<int64_t>(y - p.pad_top, 0), sh - 1);
    for (int64_t x = 0; x < wb; ++x) {
      const int64_t sx = std::min(std::max<int64_t>(x - p.pad_left, 0), sw - 1);
      const float* s = scaled.data() + (sy * sw + sx) * 3;
      for (int64_t k = 0; k < 3; ++k) out[static_cast<size_t>((k * hb + y) * wb + x)] = s[k];
    }
  }
}

// buckets.py from_bucket: crop the scaled area, resize it to the frame.
void from_bucket(const float* mask, const Placement& p, std::vector<float>& out) {
  const int64_t sh = p.scaled_height, sw = p.scaled_width, wb = p.bucket_width;
  std::vector<float> crop(static_cast<size_t>(sh * sw));
  for (int64_t y = 0; y < sh; ++y)
    std::copy_n(mask + (p.pad_top + y) * wb + p.pad_left, sw, crop.data() + y * sw);
  resize_bilinear(crop.data(), sh, sw, 1, p.src_height, p.src_width, out);
}

}  // namespace backdrop::pre
