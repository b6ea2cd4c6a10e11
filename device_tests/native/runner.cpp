// backdrop-runner: runs one exported artifact over a golden sequence with the state carried
// exactly as an app does, and writes the masks and a timing report.
//
//   backdrop-runner --artifact PATH --kind executorch|onnx|ort --state-form explicit|native
//                   --sequence SEQ.bin --out DIR [--threads N] [--warmup W] [--e2e]
//                   [--min-frames N] [--min-seconds S]
//
// The sequence file (little-endian, version 1): "BDSQ"; uint32 version = 1; uint32 state_form
// (0 explicit, 1 native); uint32 n_frames; uint32 channels (= 3); uint32 height; uint32 width;
// n_frames uint8 resets (0/1); n_frames * 3 * height * width float32 frames (NCHW, N = 1: the
// Y, U, V planes, bucket-sized, / 255). Version 2 (device_tests/sequence.py) appends the camera
// buffers: 12 uint32 (layout 0 NV21 / 1 NV12 / 2 I420, color_range 0 full / 1 video, camera
// width, camera height, row_stride (0 packed), buffer_bytes B, placement scaled_height,
// scaled_width, pad_top, pad_bottom, pad_left, pad_right), then n_frames * B bytes.
//
// End-to-end (--e2e, version 2 only): each frame's model input is made from its camera buffer
// by preprocess.cpp (bit-exact with the Python reference: `backdrop conformance --impl native`)
// instead of read from the file, and each mask is mapped back to the camera frame (from_bucket)
// into DIR/camera_masks.f32 (n_frames x camera height x width float32); report.json then has
// per-frame preprocess_ms and postprocess_ms next to per_frame_ms (the model call).
//
// State (backdrop/core/contract.py, device_tests/base.py feedback_loop):
//   explicit: prev_mask = zeros(1, 1, H, W) on frame 0 and where resets[i] == 1, else the
//             previous call's next_mask.
//   native:   reset = 1.0 where resets[i] == 1 (and on frame 0), else 0.0; the runtime keeps
//             the state between calls.
// Warm-up (--warmup W, default 0): W calls on frame 0 with the state reset, before the timed
// run; frame 0 of the run resets again, so the masks do not depend on W.
//
// Bench mode (--min-frames N and/or --min-seconds S; both 0 by default: one pass over the
// sequence): the frames run in order, wrapping round to frame 0 (a reset, as on frame 0),
// until at least N frames are timed and they add up to at least S seconds (the whole frame
// with --e2e, else the model call). The masks files hold the first pass only: every frame of
// the sequence once, or the frames that ran when the run stopped sooner (report mask_frames);
// the per-frame lists of report.json cover every timed frame (timed_frames).
//
// Writes DIR/masks.f32 (mask_frames x 1 x H x W float32, raw little-endian: the "mask" output
// after each frame) and DIR/report.json: the arguments, load_ms, per-frame per_frame_ms (model
// call), with --e2e preprocess_ms, postprocess_ms and frame_ms (camera buffer to camera mask),
// timed_frames, threads_used / threads_note (what the runtime runs with), cores (CPU number ->
// timed frames, sched_getcpu() after each model call), peak_rss_kb at the end (VmHWM, else
// getrusage ru_maxrss: peak_rss_source), baseline_rss_kb (VmRSS just before the artifact is
// loaded; -1 unreadable), runtime, device.
// Errors: one line on stderr, exit 2 for bad input (arguments, files, shapes, I/O counts), 3
// for a runtime failure (see backend.h).
#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.h"
#include "preprocess.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "backdrop-runner reads and writes little-endian float32 in place: a big-endian host needs byte swaps"
#endif

#ifndef BACKDROP_RUNNER_VERSION
#define BACKDROP_RUNNER_VERSION "1"
#endif

namespace backdrop {

// A runner configured without one of the runtimes (CMake BACKDROP_WITH_*=OFF) says so.
#ifndef BACKDROP_HAVE_EXECUTORCH
std::unique_ptr<Backend> open_executorch(const LoadOptions&) {
  bad_input("this backdrop-runner was built without ExecuTorch (BACKDROP_WITH_EXECUTORCH=OFF)");
}
#endif
#ifndef BACKDROP_HAVE_ONNXRUNTIME
std::unique_ptr<Backend> open_onnxruntime(const LoadOptions&) {
  bad_input("this backdrop-runner was built without ONNX Runtime (BACKDROP_WITH_ONNXRUNTIME=OFF)");
}
#endif

namespace {

constexpr const char* kUsage =
    "usage: backdrop-runner --artifact PATH --kind executorch|onnx|ort --state-form explicit|native\n"
    "                       --sequence SEQ.bin --out DIR [--threads N] [--warmup W] [--e2e]\n"
    "                       [--min-frames N] [--min-seconds S]\n"
    "Runs the artifact over every frame of the sequence with the state carried as an app does;\n"
    "writes DIR/masks.f32 and DIR/report.json. Exit 0 ok, 2 bad input, 3 runtime failure.\n"
    "--e2e (version-2 sequences): preprocess each camera buffer here and map each mask back\n"
    "(DIR/camera_masks.f32), timing preprocess, model and postprocess per frame.\n"
    "--min-frames N (0..1000000), --min-seconds S (0..86400): bench mode, the sequence run round\n"
    "and round (a reset at each wrap) until >= N frames and >= S seconds of frames are timed;\n"
    "the masks files keep the first pass, report.json times every frame.\n"
    "BACKDROP_RUNNER_VERBOSE=1 echoes the runtimes' own log lines on stderr.\n";

struct Args {
  std::string artifact, kind, state_form, sequence, out;
  int threads = 0;
  int warmup = 0;
  bool e2e = false;
  int min_frames = 0;      // bench mode when either is > 0
  double min_seconds = 0;

  bool bench() const { return min_frames > 0 || min_seconds > 0; }
};

constexpr long kMaxMinFrames = 1000000;
constexpr double kMaxMinSeconds = 86400;

int parse_count(const std::string& flag, const std::string& value, long max = 100000) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < 0 || v > max)
    bad_input(flag + " needs a whole number from 0 to " + std::to_string(max) + ", got \"" + value + "\"");
  return static_cast<int>(v);
}

double parse_seconds(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0 || v > kMaxMinSeconds)
    bad_input(flag + " needs a number of seconds from 0 to " + std::to_string(static_cast<long>(kMaxMinSeconds)) +
              ", got \"" + value + "\"");
  return v;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--version") {
      std::printf("backdrop-runner %s\n", BACKDROP_RUNNER_VERSION);
      std::exit(0);
    }
    if (flag == "--e2e") {
      a.e2e = true;
      continue;
    }
    const auto eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) bad_input(flag + " needs a value (--help for usage)");
      value = argv[++i];
    }
    if (flag == "--artifact") a.artifact = value;
    else if (flag == "--kind") a.kind = value;
    else if (flag == "--state-form") a.state_form = value;
    else if (flag == "--sequence") a.sequence = value;
    else if (flag == "--out") a.out = value;
    else if (flag == "--threads") a.threads = parse_count(flag, value);
    else if (flag == "--warmup") a.warmup = parse_count(flag, value);
    else if (flag == "--min-frames") a.min_frames = parse_count(flag, value, kMaxMinFrames);
    else if (flag == "--min-seconds") a.min_seconds = parse_seconds(flag, value);
    else bad_input("unknown argument \"" + flag + "\" (--help for usage)");
  }
  for (const auto& [name, v] : {std::pair<const char*, const std::string*>{"--artifact", &a.artifact},
                                {"--kind", &a.kind},
                                {"--state-form", &a.state_form},
                                {"--sequence", &a.sequence},
                                {"--out", &a.out}})
    if (v->empty()) bad_input(std::string(name) + " is required (--help for usage)");
  if (a.kind != "executorch" && a.kind != "onnx" && a.kind != "ort")
    bad_input("--kind must be executorch, onnx or ort, got \"" + a.kind + "\"");
  if (a.state_form != "explicit" && a.state_form != "native")
    bad_input("--state-form must be explicit or native, got \"" + a.state_form + "\"");
  return a;
}

// ---- the sequence file -----------------------------------------------------------------------

struct Camera {  // version 2
  pre::Layout layout = pre::Layout::kNV21;
  pre::ColorRange range = pre::ColorRange::kFull;
  uint32_t width = 0, height = 0, row_stride = 0, buffer_bytes = 0;
  uint32_t placement[6] = {};  // scaled_height, scaled_width, pad_top, pad_bottom, pad_left, pad_right
  std::vector<uint8_t> buffers;  // n_frames * buffer_bytes
};

struct Sequence {
  uint32_t version = 1, n_frames = 0, height = 0, width = 0;
  StateForm state_form = StateForm::kExplicit;
  std::vector<uint8_t> resets;
  std::vector<float> frames;  // n_frames * 3 * height * width
  Camera camera;

  const float* frame(size_t i) const { return frames.data() + i * 3 * size_t(height) * width; }
  const uint8_t* buffer(size_t i) const { return camera.buffers.data() + i * size_t(camera.buffer_bytes); }
};

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Reads the file in place (header, then each block straight into its vector): no second copy
// of the frames, so the peak memory the report gives is not set by reading the sequence.
Sequence read_sequence(const std::string& path, StateForm want_form) {
  std::ifstream f(path, std::ios::binary);
  if (!f) bad_input("sequence file " + path + " does not exist or cannot be read");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  f.seekg(0, std::ios::beg);
  if (!f || end < 0) bad_input("sequence file " + path + " cannot be read (not a regular file?)");
  const uint64_t size = static_cast<uint64_t>(end);
  auto read_at = [&](uint64_t offset, void* dst, uint64_t n) {
    f.seekg(static_cast<std::streamoff>(offset), std::ios::beg);
    f.read(static_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (!f) bad_input("sequence file " + path + ": could not read " + std::to_string(n) + " bytes at offset " +
                      std::to_string(offset));
  };
  constexpr size_t kHeader = 28;
  if (size < kHeader)
    bad_input("sequence file " + path + ": " + std::to_string(size) + " bytes, shorter than the 28-byte header");
  unsigned char head[kHeader];
  read_at(0, head, kHeader);
  if (std::memcmp(head, "BDSQ", 4) != 0) {
    std::string got;
    for (int i = 0; i < 4; ++i) {
      char c = static_cast<char>(head[i]);
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", unsigned(head[i]));
      got += (c >= 32 && c < 127) ? std::string(1, c) : std::string(hex);
    }
    bad_input("sequence file " + path + ": field magic is \"" + got + "\", expected \"BDSQ\"");
  }
  const uint32_t version = le32(&head[4]), form = le32(&head[8]), n = le32(&head[12]), channels = le32(&head[16]),
                 h = le32(&head[20]), w = le32(&head[24]);
  auto field = [&](const char* name, const std::string& what) {
    bad_input("sequence file " + path + ": field " + name + " " + what);
  };
  if (version != 1 && version != 2) field("version", "is " + std::to_string(version) + ", this runner reads versions 1 and 2");
  if (form > 1) field("state_form", "is " + std::to_string(form) + ", expected 0 (explicit) or 1 (native)");
  Sequence s;
  s.state_form = form == 0 ? StateForm::kExplicit : StateForm::kNative;
  if (s.state_form != want_form)
    field("state_form", std::string("is ") + std::to_string(form) + " (" + state_form_name(s.state_form) +
                            ") but --state-form is " + state_form_name(want_form));
  if (n == 0) field("n_frames", "is 0");
  if (channels != 3) field("channels", "is " + std::to_string(channels) + ", expected 3 (Y, U, V)");
  if (h == 0 || w == 0 || h > 16384 || w > 16384)
    field(h == 0 || h > 16384 ? "height" : "width", "is " + std::to_string(h == 0 || h > 16384 ? h : w) + ", expected 1..16384");
  const uint64_t plane = uint64_t(h) * w;
  const uint64_t want = kHeader + uint64_t(n) + uint64_t(n) * 3 * plane * sizeof(float);
  s.version = version;
  if (version == 2) {  // the camera block follows the frames
    constexpr size_t kCamera = 48;
    if (size < want + kCamera)
      bad_input("sequence file " + path + ": " + std::to_string(size) + " bytes, too short for a version-2 file with " +
                std::to_string(n) + " frames of " + std::to_string(h) + "x" + std::to_string(w) + " and its camera block");
    unsigned char c[kCamera];
    read_at(want, c, kCamera);
    const uint32_t layout = le32(c), range = le32(c + 4);
    if (layout > 2) field("camera layout", "is " + std::to_string(layout) + ", expected 0 (NV21), 1 (NV12) or 2 (I420)");
    if (range > 1) field("camera color_range", "is " + std::to_string(range) + ", expected 0 (full) or 1 (video)");
    s.camera.layout = static_cast<pre::Layout>(layout);
    s.camera.range = static_cast<pre::ColorRange>(range);
    s.camera.width = le32(c + 8);
    s.camera.height = le32(c + 12);
    s.camera.row_stride = le32(c + 16);
    s.camera.buffer_bytes = le32(c + 20);
    for (int k = 0; k < 6; ++k) s.camera.placement[k] = le32(c + 24 + 4 * k);
    const uint64_t total = want + kCamera + uint64_t(n) * s.camera.buffer_bytes;
    if (size != total)
      bad_input("sequence file " + path + ": " + std::to_string(size) + " bytes, but the header and camera block (" +
                std::to_string(n) + " buffers of " + std::to_string(s.camera.buffer_bytes) + " bytes) need " +
                std::to_string(total));
    s.camera.buffers.resize(uint64_t(n) * s.camera.buffer_bytes);
    read_at(want + kCamera, s.camera.buffers.data(), s.camera.buffers.size());
  } else if (size != want) {
    bad_input("sequence file " + path + ": " + std::to_string(size) + " bytes, but the header (n_frames " +
              std::to_string(n) + ", channels 3, height " + std::to_string(h) + ", width " + std::to_string(w) +
              ") needs " + std::to_string(want) + ": field n_frames/height/width or the frame data is wrong");
  }
  s.n_frames = n;
  s.height = h;
  s.width = w;
  s.resets.resize(n);
  read_at(kHeader, s.resets.data(), n);
  for (uint32_t i = 0; i < n; ++i)
    if (s.resets[i] > 1) field("resets", "[" + std::to_string(i) + "] is " + std::to_string(s.resets[i]) + ", expected 0 or 1");
  s.frames.resize(size_t(n) * 3 * plane);
  read_at(kHeader + n, s.frames.data(), s.frames.size() * sizeof(float));
  return s;
}

// ---- the report ------------------------------------------------------------------------------

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through unchanged
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// /proc/cpuinfo "model name" (x86, some arm); else "Hardware" or "CPU part" (arm).
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, hardware, part;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name" && !value.empty()) return value;
    if (key == "Hardware" && hardware.empty()) hardware = value;
    if (key == "CPU part" && part.empty()) part = "CPU part " + value;
  }
  return !hardware.empty() ? hardware : !part.empty() ? part : "unknown";
}

struct Timings {
  double load_ms = 0;
  std::vector<double> per_frame_ms;                   // the model call
  std::vector<double> preprocess_ms, postprocess_ms;  // --e2e
  std::vector<double> frame_ms;                       // --e2e: camera buffer to camera mask
  size_t mask_frames = 0;                             // frames of the first pass that ran
  std::map<int, size_t> cores;                        // sched_getcpu() -> timed frames
  long peak_rss_kb = -1, baseline_rss_kb = -1;        // -1: the OS did not say
  const char* peak_rss_source = "unknown";            // "VmHWM" or "ru_maxrss"
};

// A kB field of /proc/self/status ("VmRSS", "VmHWM"; Linux and Android; under qemu-user the
// emulator process's), -1 if absent.
long status_kb(const std::string& name) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = name + ":";
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) != 0) continue;
    const char* start = line.c_str() + key.size();
    char* end = nullptr;
    const long v = std::strtol(start, &end, 10);
    return end != start && v >= 0 ? v : -1;
  }
  return -1;
}

// The process's peak resident memory in kB and where it was read. VmHWM first: getrusage's
// ru_maxrss survives execve, so a runner started by a large process (Python) reports its
// parent's peak when that is higher; ru_maxrss (kB on Linux) only where VmHWM is missing.
std::pair<long, const char*> peak_rss() {
  const long hwm = status_kb("VmHWM");
  if (hwm > 0) return {hwm, "VmHWM"};
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) == 0 && usage.ru_maxrss > 0) return {static_cast<long>(usage.ru_maxrss), "ru_maxrss"};
  return {-1, "unknown"};
}

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + json_number(v[i]);
  return out + "]";
}

std::string report_json(const Args& a, const Sequence& s, const Backend& backend, const Timings& t) {
  struct utsname u {};
  const bool have_uname = uname(&u) == 0;
  const std::string machine = have_uname ? u.machine : "unknown";
  const std::string os = have_uname ? std::string(u.sysname) + " " + u.release : "unknown";
  std::ostringstream j;
  j << "{\n";
  j << "  \"runner\": \"backdrop-runner\",\n";
  j << "  \"runner_version\": " << json_string(BACKDROP_RUNNER_VERSION) << ",\n";
  j << "  \"kind\": " << json_string(a.kind) << ",\n";
  j << "  \"state_form\": " << json_string(a.state_form) << ",\n";
  j << "  \"artifact\": " << json_string(a.artifact) << ",\n";
  j << "  \"sequence\": " << json_string(a.sequence) << ",\n";
  j << "  \"frames\": " << s.n_frames << ",\n";
  j << "  \"height\": " << s.height << ",\n";
  j << "  \"width\": " << s.width << ",\n";
  j << "  \"threads\": " << a.threads << ",\n";
  j << "  \"warmup\": " << a.warmup << ",\n";
  j << "  \"load_ms\": " << json_number(t.load_ms) << ",\n";
  j << "  \"per_frame_ms\": " << json_list(t.per_frame_ms) << ",\n";
  j << "  \"e2e\": " << (a.e2e ? "true" : "false") << ",\n";
  j << "  \"min_frames\": " << a.min_frames << ",\n";
  j << "  \"min_seconds\": " << json_number(a.min_seconds) << ",\n";
  j << "  \"timed_frames\": " << t.per_frame_ms.size() << ",\n";
  j << "  \"mask_frames\": " << t.mask_frames << ",\n";
  j << "  \"frame_ms\": " << json_list(t.frame_ms) << ",\n";
  j << "  \"threads_used\": " << backend.threads_used() << ",\n";
  j << "  \"threads_note\": " << json_string(backend.threads_note()) << ",\n";
  j << "  \"cores\": {";
  for (auto it = t.cores.begin(); it != t.cores.end(); ++it)
    j << (it == t.cores.begin() ? "" : ", ") << "\"" << it->first << "\": " << it->second;
  j << "},\n";
  j << "  \"peak_rss_kb\": " << t.peak_rss_kb << ",\n";
  j << "  \"peak_rss_source\": " << json_string(t.peak_rss_source) << ",\n";
  j << "  \"baseline_rss_kb\": " << t.baseline_rss_kb << ",\n";
  if (a.e2e) {
    j << "  \"preprocess_ms\": " << json_list(t.preprocess_ms) << ",\n";
    j << "  \"postprocess_ms\": " << json_list(t.postprocess_ms) << ",\n";
    j << "  \"camera\": {\"layout\": " << json_string(pre::layout_name(s.camera.layout))
      << ", \"color_range\": " << json_string(pre::range_name(s.camera.range)) << ", \"height\": " << s.camera.height
      << ", \"width\": " << s.camera.width << ", \"row_stride\": " << s.camera.row_stride << "},\n";
  }
  j << "  \"runtime\": {\"name\": " << json_string(backend.runtime_name())
    << ", \"version\": " << json_string(backend.runtime_version()) << "},\n";
  j << "  \"device\": {\"machine\": " << json_string(machine) << ", \"cpu\": " << json_string(cpu_model())
    << ", \"os\": " << json_string(os) << ", \"cores\": " << std::thread::hardware_concurrency() << "}\n";
  j << "}\n";
  return j.str();
}

void write_file(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (f) f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) runtime_failure("could not write " + path.string());
}

// ---- the run ---------------------------------------------------------------------------------

int run(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  const StateForm form = a.state_form == "explicit" ? StateForm::kExplicit : StateForm::kNative;
  const Sequence seq = read_sequence(a.sequence, form);
  if (a.e2e && seq.version != 2)
    bad_input("--e2e needs a version-2 sequence file (with camera buffers); " + a.sequence + " is version " +
              std::to_string(seq.version));
  pre::Placement placement;
  if (a.e2e) {
    const Camera& c = seq.camera;
    try {
      placement = pre::plan(c.height, c.width, seq.height, seq.width);
      if (pre::camera_buffer_size(c.layout, c.width, c.height, c.row_stride) != c.buffer_bytes)
        throw pre::PreprocessError("buffer_bytes " + std::to_string(c.buffer_bytes) + " is not the size of a " +
                                   pre::layout_name(c.layout) + " buffer of " + std::to_string(c.width) + "x" +
                                   std::to_string(c.height) + " with row_stride " + std::to_string(c.row_stride));
    } catch (const pre::PreprocessError& e) {
      bad_input("sequence file " + a.sequence + ": camera block: " + e.what());
    }
    const int64_t mine[6] = {placement.scaled_height, placement.scaled_width, placement.pad_top,
                             placement.pad_bottom, placement.pad_left, placement.pad_right};
    for (int k = 0; k < 6; ++k)
      if (mine[k] != int64_t(c.placement[k]))
        bad_input("sequence file " + a.sequence + ": camera block: placement field " + std::to_string(k) + " is " +
                  std::to_string(c.placement[k]) + " but preprocess.cpp plans " + std::to_string(mine[k]) +
                  " (fields: scaled_height, scaled_width, pad_top, pad_bottom, pad_left, pad_right)");
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out)) bad_input("--out " + a.out + " is not a folder that can be created");

  LoadOptions options;
  options.path = a.artifact;
  options.state_form = form;
  options.threads = a.threads;
  options.height = static_cast<int>(seq.height);
  options.width = static_cast<int>(seq.width);
  options.sequence = a.sequence;

  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point t0, Clock::time_point t1) {
    return std::chrono::duration<double, std::milli>(t1 - t0).count();
  };
  Timings timings;
  timings.baseline_rss_kb = status_kb("VmRSS");
  const auto t_load = Clock::now();
  std::unique_ptr<Backend> backend = a.kind == "executorch" ? open_executorch(options) : open_onnxruntime(options);
  timings.load_ms = ms(t_load, Clock::now());

  const size_t n = seq.n_frames;
  const size_t plane = size_t(seq.height) * seq.width;
  std::vector<float> state(plane, 0.0f), next(plane, 0.0f), scratch(plane, 0.0f);
  std::vector<float> masks(n * plane);
  const float reset_on = 1.0f, reset_off = 0.0f;
  const bool explicit_form = form == StateForm::kExplicit;

  for (int k = 0; k < a.warmup; ++k) {  // frame 0 with the state reset, untimed
    std::fill(state.begin(), state.end(), 0.0f);
    backend->run(seq.frame(0), explicit_form ? state.data() : &reset_on, scratch.data(), next.data());
  }
  const size_t expect = a.bench() ? std::max(size_t(a.min_frames), n) : n;
  timings.per_frame_ms.reserve(expect);
  if (a.e2e)
    for (auto* v : {&timings.preprocess_ms, &timings.postprocess_ms, &timings.frame_ms}) v->reserve(expect);
  const size_t camera_plane = size_t(seq.camera.height) * seq.camera.width;
  std::vector<float> camera_masks(a.e2e ? n * camera_plane : 0), input, camera_mask;
  std::vector<uint8_t> yuv;
  // One pass over the sequence; in bench mode round and round (frame 0 resets each time) until
  // min_frames frames are timed and they add up to min_seconds (whole frames with --e2e).
  const double min_ms = a.min_seconds * 1e3;
  double timed_ms = 0;
  size_t i = 0;
  auto more = [&] { return a.bench() ? i < size_t(a.min_frames) || timed_ms < min_ms : i < n; };
  for (; more(); ++i) {
    const size_t k = i % n;
    const bool first_pass = i < n;  // masks are kept for the first pass only
    const bool reset = k == 0 || seq.resets[k] != 0;
    if (explicit_form && reset) std::fill(state.begin(), state.end(), 0.0f);
    const float* second = explicit_form ? state.data() : (reset ? &reset_on : &reset_off);
    float* mask = first_pass ? masks.data() + k * plane : scratch.data();
    const float* frame = seq.frame(k);
    const auto t_frame = Clock::now();
    if (a.e2e) {  // camera buffer -> YUV444 -> model input, as the app does
      try {
        pre::to_yuv444(seq.buffer(k), seq.camera.buffer_bytes, seq.camera.layout, seq.camera.width, seq.camera.height,
                       seq.camera.row_stride, seq.camera.range, yuv);
      } catch (const pre::PreprocessError& e) {
        bad_input("sequence file " + a.sequence + ": camera buffer " + std::to_string(k) + ": " + e.what());
      }
      pre::model_input(yuv.data(), placement, input);
      frame = input.data();
      timings.preprocess_ms.push_back(ms(t_frame, Clock::now()));
    }
    const auto t0 = Clock::now();
    backend->run(frame, second, mask, next.data());
    timings.per_frame_ms.push_back(ms(t0, Clock::now()));
    const int cpu = sched_getcpu();  // where the model call ended (-1: the OS does not say)
    if (cpu >= 0) ++timings.cores[cpu];
    if (a.e2e) {  // the mask back to the camera frame
      const auto tq = Clock::now();
      pre::from_bucket(mask, placement, camera_mask);
      const auto t_end = Clock::now();
      timings.postprocess_ms.push_back(ms(tq, t_end));
      timings.frame_ms.push_back(ms(t_frame, t_end));
      if (first_pass)  // the runner's record, not the app's work: outside the timings
        std::copy(camera_mask.begin(), camera_mask.end(), camera_masks.begin() + static_cast<std::ptrdiff_t>(k * camera_plane));
    }
    timed_ms += a.e2e ? timings.frame_ms.back() : timings.per_frame_ms.back();
    if (explicit_form) state.swap(next);
  }
  timings.mask_frames = std::min(i, n);
  std::tie(timings.peak_rss_kb, timings.peak_rss_source) = peak_rss();

  const std::filesystem::path out(a.out);
  write_file(out / "masks.f32", masks.data(), timings.mask_frames * plane * sizeof(float));
  if (a.e2e) write_file(out / "camera_masks.f32", camera_masks.data(), timings.mask_frames * camera_plane * sizeof(float));
  const std::string report = report_json(a, seq, *backend, timings);
  write_file(out / "report.json", report.data(), report.size());
  return 0;
}

}  // namespace
}  // namespace backdrop

int main(int argc, char** argv) {
  try {
    return backdrop::run(argc, argv);
  } catch (const backdrop::RunnerError& e) {
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');  // runtimes' messages may span lines
    std::fprintf(stderr, "backdrop-runner: error: %s\n", message.c_str());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "backdrop-runner: error: %s\n", e.what());
    return backdrop::kExitRuntime;
  }
}
