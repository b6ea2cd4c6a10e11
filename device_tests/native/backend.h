// backdrop-runner: the runtime interface (one loaded artifact, one frame per call).
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace backdrop {

// Exit codes (runner.cpp's usage text lists them).
constexpr int kExitBadInput = 2;  // arguments, files, shapes, I/O counts: what was handed in
constexpr int kExitRuntime = 3;   // a runtime failed while running, or the outputs can't be written

// The one error type: `code` is the exit status, `what()` the single line printed on stderr.
class RunnerError : public std::runtime_error {
 public:
  RunnerError(int code, const std::string& message) : std::runtime_error(message), code(code) {}
  int code;
};

[[noreturn]] inline void bad_input(const std::string& message) { throw RunnerError(kExitBadInput, message); }
[[noreturn]] inline void runtime_failure(const std::string& message) { throw RunnerError(kExitRuntime, message); }

// "1x3x160x288" for sizes {1, 3, 160, 288}; a dynamic size (< 0) prints as "?".
inline std::string shape_str(const std::vector<long long>& sizes) {
  std::string s;
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? "x" : "") + (sizes[i] < 0 ? std::string("?") : std::to_string(sizes[i]));
  return sizes.empty() ? std::string("(scalar)") : s;
}

enum class StateForm { kExplicit, kNative };

inline const char* state_form_name(StateForm f) { return f == StateForm::kExplicit ? "explicit" : "native"; }

struct LoadOptions {
  std::string path;  // the artifact file
  StateForm state_form = StateForm::kExplicit;
  int threads = 0;  // intra-op threads; 0 = the runtime's default
  int height = 0;   // the sequence's frame size, checked against the artifact's inputs
  int width = 0;
  std::string sequence;  // the sequence file, for error messages
};

// One loaded artifact. `run` executes one frame:
//   explicit: inputs (frame 1x3xHxW, prev_mask 1x1xHxW) -> mask, next_mask (both 1x1xHxW)
//   native:   inputs (frame 1x3xHxW, reset (1,))        -> mask; the runtime keeps the state
// `second` is prev_mask or reset; `next_mask` is ignored (may be null) in the native form.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual void run(const float* frame, const float* second, float* mask, float* next_mask) = 0;
  virtual std::string runtime_name() const = 0;     // "executorch" | "onnxruntime"
  virtual std::string runtime_version() const = 0;  // e.g. "1.5.1", "1.32.0"
  // The threads the runtime runs with, as far as it says (0: it cannot say), and how that figure
  // was found or why it is 0 (report.json threads_used / threads_note).
  virtual int threads_used() const { return 0; }
  virtual std::string threads_note() const { return "unknown"; }
};

// Each throws RunnerError naming the file and what the runtime said, or what differs.
std::unique_ptr<Backend> open_executorch(const LoadOptions& options);
std::unique_ptr<Backend> open_onnxruntime(const LoadOptions& options);

}  // namespace backdrop
