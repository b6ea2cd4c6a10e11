// backdrop-runner: ExecuTorch (.pte, XNNPACK delegate) through executorch::extension::Module.
//
// Inputs and outputs bind by position (export/formats/executorch.py): explicit
// (frame, prev_mask) -> (mask, next_mask); native (frame, reset) -> mask, the state living in
// the program's mutable buffer, which persists across forward() calls (reset = 1.0 clears it).
#include "backend.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>

#include "io_check.h"

#ifndef BACKDROP_EXECUTORCH_VERSION
#define BACKDROP_EXECUTORCH_VERSION "unknown"
#endif

// threadpool.h is not in the wheel's include/; its symbols are exported by
// libexecutorch_threadpool.so. Only these two member functions are used (the XNNPACK delegate
// runs on this pool: get_thread_count() is what the runner reports as threads_used).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace backdrop {
namespace {

namespace et = ::executorch::runtime;
using ::executorch::extension::Module;

// ExecuTorch logs through its platform layer (stderr by default). The runner keeps its
// stderr to one line per error: runtime messages are captured here, errors and fatals kept
// for the error line ("what the runtime said"), everything echoed with BACKDROP_RUNNER_VERBOSE=1.
std::mutex g_log_mutex;
std::deque<std::string> g_log_errors;
bool g_log_verbose = false;

void capture_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
                 const char* message, size_t length) {
  std::string text(message, length);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_log_verbose) std::fprintf(stderr, "[executorch %c %s:%zu] %s\n", static_cast<char>(level), file, line, text.c_str());
  if (level == kError || level == kFatal) {
    g_log_errors.push_back(text);
    if (g_log_errors.size() > 4) g_log_errors.pop_front();
  }
}

void install_logger() {
  static bool done = false;
  if (done) return;
  done = true;
  const char* verbose = std::getenv("BACKDROP_RUNNER_VERBOSE");
  g_log_verbose = verbose && *verbose && std::strcmp(verbose, "0") != 0;
  et::register_pal(et::PalImpl::create(capture_log, __FILE__));
}

// "InvalidProgram (0x23): <the runtime's last error log lines>"
std::string said(et::Error error) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%x", static_cast<unsigned>(error));
  std::string out = std::string(et::to_string(error)) + " (" + code + ")";
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string logs;
  for (const auto& line : g_log_errors) logs += (logs.empty() ? "" : "; ") + line;
  g_log_errors.clear();
  return logs.empty() ? out : out + ": " + logs;
}

std::string dtype_name(::executorch::aten::ScalarType t) {
  using ST = ::executorch::aten::ScalarType;
  switch (t) {
    case ST::Float: return "float32";
    case ST::Half: return "float16";
    case ST::Double: return "float64";
    case ST::Char: return "int8";
    case ST::Byte: return "uint8";
    case ST::Int: return "int32";
    case ST::Long: return "int64";
    case ST::Bool: return "bool";
    default: return "scalar type " + std::to_string(static_cast<int>(t));
  }
}

std::string tag_name(et::Tag tag) {
  switch (tag) {
    case et::Tag::Tensor: return "Tensor";
    case et::Tag::None: return "None";
    case et::Tag::Int: return "Int";
    case et::Tag::Double: return "Double";
    case et::Tag::Bool: return "Bool";
    default: return "non-tensor value (tag " + std::to_string(static_cast<int>(tag)) + ")";
  }
}

class ExecuTorchBackend final : public Backend {
 public:
  explicit ExecuTorchBackend(const LoadOptions& options) : options_(options) {
    install_logger();
    const std::string& path = options.path;
    check_readable(path, "ExecuTorch program");
    if (options.threads > 0) {
      auto* pool = ::executorch::extension::threadpool::get_threadpool();
      if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(options.threads)))
        bad_input("ExecuTorch could not set its thread pool to --threads " + std::to_string(options.threads));
    }
    module_ = std::make_unique<Module>(path, Module::LoadMode::File);
    et::Error err = module_->load();
    if (err != et::Error::Ok) bad_input("ExecuTorch could not load " + path + ": " + said(err));
    auto names = module_->method_names();
    if (!names.ok()) bad_input("ExecuTorch could not list the methods of " + path + ": " + said(names.error()));
    if (names->count("forward") == 0) {
      std::string have;
      for (const auto& n : *names) have += (have.empty() ? "" : ", ") + n;
      bad_input(path + " has no method 'forward' (it has: " + (have.empty() ? "none" : have) + ")");
    }
    err = module_->load_method("forward");
    if (err != et::Error::Ok)
      bad_input("ExecuTorch could not load method 'forward' of " + path + ": " + said(err) +
                " (a missing backend or operator means the runner lacks a library the program needs)");
    auto meta = module_->method_meta("forward");
    if (!meta.ok()) bad_input("ExecuTorch could not read the signature of " + path + ": " + said(meta.error()));
    for (size_t i = 0; i < meta->num_inputs(); ++i) inputs_.push_back(tensor_info(*meta, i, true));
    for (size_t i = 0; i < meta->num_outputs(); ++i) outputs_.push_back(tensor_info(*meta, i, false));
    check_io(path, "the .pte's forward", options.state_form, options.height, options.width, inputs_, outputs_, true,
             options.sequence);
  }

  void run(const float* frame, const float* second, float* mask, float* next_mask) override {
    const int h = options_.height, w = options_.width;
    const bool explicit_form = options_.state_form == StateForm::kExplicit;
    // from_blob wraps the caller's memory; the runtime only reads inputs.
    auto frame_t = ::executorch::extension::from_blob(const_cast<float*>(frame), {1, 3, h, w});
    auto second_t = explicit_form ? ::executorch::extension::from_blob(const_cast<float*>(second), {1, 1, h, w})
                                  : ::executorch::extension::from_blob(const_cast<float*>(second), {1});
    auto result = module_->forward({frame_t, second_t});
    if (!result.ok()) runtime_failure("ExecuTorch forward() of " + options_.path + " failed: " + said(result.error()));
    const size_t want = explicit_form ? 2 : 1;
    if (result->size() != want)
      runtime_failure(options_.path + ": forward() returned " + std::to_string(result->size()) + " outputs, expected " +
                      std::to_string(want));
    // Outputs live in the method's planned memory: copy them out before the next call.
    copy_output((*result)[0], mask, 0);
    if (explicit_form) copy_output((*result)[1], next_mask, 1);
  }

  std::string runtime_name() const override { return "executorch"; }
  std::string runtime_version() const override { return BACKDROP_EXECUTORCH_VERSION; }
  int threads_used() const override {
    const auto* pool = ::executorch::extension::threadpool::get_threadpool();
    return pool == nullptr ? 0 : static_cast<int>(pool->get_thread_count());
  }
  std::string threads_note() const override {
    return ::executorch::extension::threadpool::get_threadpool() == nullptr
               ? "no ExecuTorch thread pool"
               : "ExecuTorch thread pool (XNNPACK's), get_thread_count()";
  }

 private:
  static IoInfo tensor_info(const et::MethodMeta& meta, size_t i, bool input) {
    IoInfo info;
    info.name = "";  // ExecuTorch binds by position; io_check names positions itself
    auto tag = input ? meta.input_tag(i) : meta.output_tag(i);
    if (!tag.ok() || *tag != et::Tag::Tensor) {
      info.kind = tag.ok() ? tag_name(*tag) : "unreadable";
      return info;
    }
    auto t = input ? meta.input_tensor_meta(i) : meta.output_tensor_meta(i);
    if (!t.ok()) {
      info.kind = "unreadable tensor";
      return info;
    }
    for (auto d : t->sizes()) info.shape.push_back(d);
    info.dtype = dtype_name(t->scalar_type());
    return info;
  }

  void copy_output(const et::EValue& value, float* dst, size_t index) {
    const size_t numel = static_cast<size_t>(options_.height) * options_.width;
    if (!value.isTensor()) runtime_failure(options_.path + ": forward() output " + std::to_string(index) + " is not a tensor");
    const auto& t = value.toTensor();
    if (t.scalar_type() != ::executorch::aten::ScalarType::Float || static_cast<size_t>(t.numel()) != numel)
      runtime_failure(options_.path + ": forward() output " + std::to_string(index) + " has " +
                      std::to_string(t.numel()) + " elements of " + dtype_name(t.scalar_type()) + ", expected " +
                      std::to_string(numel) + " float32");
    std::memcpy(dst, t.const_data_ptr<float>(), numel * sizeof(float));
  }

  LoadOptions options_;
  std::unique_ptr<Module> module_;
  std::vector<IoInfo> inputs_, outputs_;
};

}  // namespace

std::unique_ptr<Backend> open_executorch(const LoadOptions& options) {
  return std::make_unique<ExecuTorchBackend>(options);
}

}  // namespace backdrop
