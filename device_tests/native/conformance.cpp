// backdrop-conformance: runs the runner's own preprocessing (preprocess.cpp) over a case file
// written by device_tests/conformance.py, so that `backdrop conformance --impl native` can hold
// it bit for bit against the Python reference.
//
//   backdrop-conformance --cases CASES.bdcc --out RESULTS.bdcr
//
// Case file (little-endian, version 1; docs/frames.md "Conformance"):
//   "BDCC"; uint32 version = 1; uint32 n_cases; then per case nine uint32: name_bytes L,
//   layout (0 NV21, 1 NV12, 2 I420), color_range (0 full, 1 video), width, height, row_stride
//   (0: packed rows), bucket_height, bucket_width, buffer_bytes B; then L bytes of name (UTF-8),
//   B bytes of camera buffer, bucket_height * bucket_width float32 bucket mask.
// Results file:
//   "BDCR"; uint32 version = 1; uint32 n_cases; then per case uint32 status:
//   1 (rejected, as the reference rejects the buffer): uint32 message bytes M, M bytes message;
//   0 (ok): six uint32 scaled_height, scaled_width, pad_top, pad_bottom, pad_left, pad_right;
//     height * width * 3 uint8 YUV444 (row, col, channel); 3 * bucket_height * bucket_width
//     float32 model input (channel, row, col); height * width float32 camera mask.
//
// Errors: one line on stderr; exit 2 for bad arguments or a malformed case file (naming the case
// and the field), 3 when the results cannot be written.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "preprocess.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "backdrop-conformance reads and writes little-endian data in place: a big-endian host needs byte swaps"
#endif

#ifndef BACKDROP_RUNNER_VERSION
#define BACKDROP_RUNNER_VERSION "1"
#endif

namespace {

constexpr const char* kUsage =
    "usage: backdrop-conformance --cases CASES.bdcc --out RESULTS.bdcr\n"
    "Runs backdrop-runner's camera-buffer preprocessing (YUV 4:2:0 -> YUV444 -> bucket model input,\n"
    "and bucket mask -> camera mask) over every case; device_tests/conformance.py writes the cases\n"
    "and compares the results with the Python reference. Exit 0 ok, 2 bad input, 3 write failure.\n";

struct Failure : std::runtime_error {
  int code;
  Failure(const std::string& what, int c) : std::runtime_error(what), code(c) {}
};
[[noreturn]] void bad_input(const std::string& what) { throw Failure(what, 2); }

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

class Reader {
 public:
  Reader(std::vector<unsigned char> bytes, std::string path) : bytes_(std::move(bytes)), path_(std::move(path)) {}
  const unsigned char* take(size_t n, const std::string& what) {
    if (bytes_.size() - pos_ < n)
      bad_input("case file " + path_ + ": truncated in " + what + " at byte " + std::to_string(pos_) + ": needs " +
                std::to_string(n) + " bytes, " + std::to_string(bytes_.size() - pos_) + " left");
    const unsigned char* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32(const std::string& what) { return le32(take(4, what)); }
  size_t pos() const { return pos_; }
  size_t size() const { return bytes_.size(); }
  const std::string& path() const { return path_; }

 private:
  std::vector<unsigned char> bytes_;
  std::string path_;
  size_t pos_ = 0;
};

class Writer {
 public:
  explicit Writer(const std::string& path) : f_(path, std::ios::binary | std::ios::trunc), path_(path) {
    if (!f_) throw Failure("cannot write results file " + path, 3);
  }
  void bytes(const void* p, size_t n) {
    f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    if (!f_) throw Failure("could not write results file " + path_, 3);
  }
  void u32(uint32_t v) {
    const unsigned char b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    bytes(b, 4);
  }
  void close() {
    f_.close();
    if (!f_) throw Failure("could not write results file " + path_, 3);
  }

 private:
  std::ofstream f_;
  std::string path_;
};

int run(int argc, char** argv) {
  std::string cases_path, out_path;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag == "--version") {
      std::printf("backdrop-conformance %s\n", BACKDROP_RUNNER_VERSION);
      return 0;
    }
    const auto eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) bad_input(flag + " needs a value (--help for usage)");
      value = argv[++i];
    }
    if (flag == "--cases") cases_path = value;
    else if (flag == "--out") out_path = value;
    else bad_input("unknown argument \"" + flag + "\" (--help for usage)");
  }
  if (cases_path.empty() || out_path.empty()) bad_input("--cases and --out are required (--help for usage)");

  std::ifstream f(cases_path, std::ios::binary);
  if (!f) bad_input("case file " + cases_path + " does not exist or cannot be read");
  Reader in(std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()),
            cases_path);
  const unsigned char* magic = in.take(4, "the header");
  if (std::memcmp(magic, "BDCC", 4) != 0) bad_input("case file " + cases_path + ": magic is not \"BDCC\"");
  const uint32_t version = in.u32("the header");
  if (version != 1)
    bad_input("case file " + cases_path + ": version " + std::to_string(version) + ", this program reads version 1");
  const uint32_t n_cases = in.u32("the header");

  const std::string tmp_path = out_path + ".tmp";
  struct RemoveUnlessDone {  // declared before the writer, so it runs after the file is closed
    std::string path;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ignored;
      if (!done) std::filesystem::remove(path, ignored);
    }
  } guard{tmp_path};
  Writer out(tmp_path);
  out.bytes("BDCR", 4);
  out.u32(1);
  out.u32(n_cases);
  std::vector<uint8_t> yuv;
  std::vector<float> frame, camera_mask, bucket_mask;
  for (uint32_t k = 0; k < n_cases; ++k) {
    std::string what = "case " + std::to_string(k);
    uint32_t h[9];
    for (auto& v : h) v = in.u32(what + " header");
    const uint32_t name_bytes = h[0], layout = h[1], range = h[2], width = h[3], height = h[4], stride = h[5],
                   bh = h[6], bw = h[7], buffer_bytes = h[8];
    if (name_bytes > 4096) bad_input("case file " + cases_path + ": " + what + ": name_bytes " + std::to_string(name_bytes) + " > 4096");
    const unsigned char* name = in.take(name_bytes, what + " name");
    what += " (" + std::string(reinterpret_cast<const char*>(name), name_bytes) + ")";
    auto field = [&](const char* f, const std::string& problem) {
      bad_input("case file " + cases_path + ": " + what + ": field " + f + " " + problem);
    };
    if (layout > 2) field("layout", "is " + std::to_string(layout) + ", expected 0 (NV21), 1 (NV12) or 2 (I420)");
    if (range > 1) field("color_range", "is " + std::to_string(range) + ", expected 0 (full) or 1 (video)");
    if (bh < 1 || bh > 4096) field("bucket_height", "is " + std::to_string(bh) + ", expected 1..4096");
    if (bw < 1 || bw > 4096) field("bucket_width", "is " + std::to_string(bw) + ", expected 1..4096");
    const unsigned char* buffer = in.take(buffer_bytes, what + " camera buffer");
    const unsigned char* mask = in.take(size_t(bh) * bw * sizeof(float), what + " bucket mask");
    bucket_mask.resize(size_t(bh) * bw);
    std::memcpy(bucket_mask.data(), mask, bucket_mask.size() * sizeof(float));
    using namespace backdrop::pre;
    try {
      to_yuv444(buffer, buffer_bytes, static_cast<Layout>(layout), width, height, stride, static_cast<ColorRange>(range),
                yuv);
      const Placement p = plan(height, width, bh, bw);
      model_input(yuv.data(), p, frame);
      from_bucket(bucket_mask.data(), p, camera_mask);
      out.u32(0);
      for (int64_t v : {p.scaled_height, p.scaled_width, p.pad_top, p.pad_bottom, p.pad_left, p.pad_right})
        out.u32(static_cast<uint32_t>(v));
      out.bytes(yuv.data(), yuv.size());
      out.bytes(frame.data(), frame.size() * sizeof(float));
      out.bytes(camera_mask.data(), camera_mask.size() * sizeof(float));
    } catch (const PreprocessError& e) {
      const std::string message = e.what();
      out.u32(1);
      out.u32(static_cast<uint32_t>(message.size()));
      out.bytes(message.data(), message.size());
    }
  }
  if (in.pos() != in.size())
    bad_input("case file " + cases_path + ": " + std::to_string(in.size() - in.pos()) + " bytes after the last of its " +
              std::to_string(n_cases) + " cases (field n_cases is wrong, or the file is corrupt)");
  out.close();
  std::error_code ec;
  std::filesystem::rename(tmp_path, out_path, ec);
  if (ec) throw Failure("could not move " + tmp_path + " to " + out_path + ": " + ec.message(), 3);
  guard.done = true;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Failure& e) {
    std::fprintf(stderr, "backdrop-conformance: error: %s\n", e.what());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "backdrop-conformance: error: %s\n", e.what());
    return 3;
  }
}
