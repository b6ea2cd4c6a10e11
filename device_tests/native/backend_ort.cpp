// backdrop-runner: ONNX Runtime (.onnx and its .ort twin) through the C API, CPU execution
// provider. Explicit state only (export/formats/onnx.py): inputs bind by name ("frame",
// "prev_mask"), outputs "mask", "next_mask".
#include "backend.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <onnxruntime_c_api.h>

#include "io_check.h"

namespace backdrop {
namespace {

class OrtBackend final : public Backend {
 public:
  explicit OrtBackend(const LoadOptions& options) : options_(options) {
    const std::string& path = options.path;
    if (options.state_form != StateForm::kExplicit)
      bad_input(path + ": ONNX Runtime artifacts (.onnx, .ort) come in the explicit state form only, not --state-form " +
                state_form_name(options.state_form));
    check_readable(path, "ONNX Runtime model");
    const OrtApiBase* base = OrtGetApiBase();
    api_ = base->GetApi(ORT_API_VERSION);
    if (api_ == nullptr)
      runtime_failure(std::string("the ONNX Runtime library (") + base->GetVersionString() +
                      ") does not offer C API version " + std::to_string(ORT_API_VERSION) + " (the headers' version)");
    const char* verbose = std::getenv("BACKDROP_RUNNER_VERBOSE");
    const bool loud = verbose && *verbose && std::strcmp(verbose, "0") != 0;
    check(api_->CreateEnv(loud ? ORT_LOGGING_LEVEL_INFO : ORT_LOGGING_LEVEL_ERROR, "backdrop-runner", &env_),
          kExitRuntime, "ONNX Runtime could not create its environment");
    check(api_->CreateSessionOptions(&session_options_), kExitRuntime, "ONNX Runtime could not create session options");
    if (options.threads > 0)
      check(api_->SetIntraOpNumThreads(session_options_, options.threads), kExitBadInput,
            "ONNX Runtime rejected --threads " + std::to_string(options.threads));
    check(api_->CreateSession(env_, path.c_str(), session_options_, &session_), kExitBadInput,
          "ONNX Runtime could not load " + path);
    check(api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_info_), kExitRuntime,
          "ONNX Runtime could not create CPU memory info");
    check(api_->GetAllocatorWithDefaultOptions(&allocator_), kExitRuntime, "ONNX Runtime has no default allocator");

    std::vector<IoInfo> inputs = describe(true), outputs = describe(false);
    inputs = by_name(inputs, expected_inputs(options.state_form), "inputs");
    outputs = by_name(outputs, expected_outputs(options.state_form), "outputs");
    check_io(path, "the ONNX graph", options.state_form, options.height, options.width, inputs, outputs, false,
             options.sequence);
  }

  ~OrtBackend() override {
    if (api_ == nullptr) return;
    if (memory_info_) api_->ReleaseMemoryInfo(memory_info_);
    if (session_) api_->ReleaseSession(session_);
    if (session_options_) api_->ReleaseSessionOptions(session_options_);
    if (env_) api_->ReleaseEnv(env_);
  }

  void run(const float* frame, const float* second, float* mask, float* next_mask) override {
    const int64_t h = options_.height, w = options_.width;
    const int64_t frame_shape[] = {1, 3, h, w}, plane_shape[] = {1, 1, h, w};
    Values in(api_, 2), out(api_, 2);
    check(api_->CreateTensorWithDataAsOrtValue(memory_info_, const_cast<float*>(frame), sizeof(float) * 3 * h * w,
                                               frame_shape, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in.v[0]),
          kExitRuntime, "ONNX Runtime could not wrap the frame");
    check(api_->CreateTensorWithDataAsOrtValue(memory_info_, const_cast<float*>(second), sizeof(float) * h * w,
                                               plane_shape, 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in.v[1]),
          kExitRuntime, "ONNX Runtime could not wrap prev_mask");
    const char* in_names[] = {"frame", "prev_mask"};
    const char* out_names[] = {"mask", "next_mask"};
    check(api_->Run(session_, nullptr, in_names, in.v.data(), 2, out_names, 2, out.v.data()), kExitRuntime,
          "ONNX Runtime Run() of " + options_.path + " failed");
    copy_output(out.v[0], mask, "mask");
    copy_output(out.v[1], next_mask, "next_mask");
  }

  std::string runtime_name() const override { return "onnxruntime"; }
  std::string runtime_version() const override { return OrtGetApiBase()->GetVersionString(); }
  // The C API cannot say how many intra-op threads a session runs with when left to choose.
  int threads_used() const override { return options_.threads; }
  std::string threads_note() const override {
    return options_.threads > 0 ? "intra-op threads as set (SetIntraOpNumThreads)"
                                : "runtime default (ONNX Runtime chooses its intra-op threads; its C API does not say how many)";
  }

 private:
  // OrtValue* array released on scope exit.
  struct Values {
    Values(const OrtApi* api, size_t n) : api(api), v(n, nullptr) {}
    ~Values() {
      for (OrtValue* x : v)
        if (x) api->ReleaseValue(x);
    }
    const OrtApi* api;
    std::vector<OrtValue*> v;
  };

  void check(OrtStatus* status, int code, const std::string& what) {
    if (status == nullptr) return;
    std::string message = api_->GetErrorMessage(status);
    api_->ReleaseStatus(status);
    throw RunnerError(code, what + ": " + message);
  }

  std::vector<IoInfo> describe(bool input) {
    size_t count = 0;
    check(input ? api_->SessionGetInputCount(session_, &count) : api_->SessionGetOutputCount(session_, &count),
          kExitRuntime, "ONNX Runtime could not count the model's " + std::string(input ? "inputs" : "outputs"));
    std::vector<IoInfo> out;
    for (size_t i = 0; i < count; ++i) {
      IoInfo info;
      char* name = nullptr;
      check(input ? api_->SessionGetInputName(session_, i, allocator_, &name)
                  : api_->SessionGetOutputName(session_, i, allocator_, &name),
            kExitRuntime, "ONNX Runtime could not name a model input/output");
      info.name = name;
      allocator_->Free(allocator_, name);
      OrtTypeInfo* type = nullptr;
      check(input ? api_->SessionGetInputTypeInfo(session_, i, &type) : api_->SessionGetOutputTypeInfo(session_, i, &type),
            kExitRuntime, "ONNX Runtime could not read the type of " + info.name);
      ONNXType onnx_type = ONNX_TYPE_UNKNOWN;
      check(api_->GetOnnxTypeFromTypeInfo(type, &onnx_type), kExitRuntime, "ONNX Runtime type info");
      if (onnx_type != ONNX_TYPE_TENSOR) {
        info.kind = "non-tensor value (ONNX type " + std::to_string(static_cast<int>(onnx_type)) + ")";
      } else {
        const OrtTensorTypeAndShapeInfo* tensor = nullptr;
        check(api_->CastTypeInfoToTensorInfo(type, &tensor), kExitRuntime, "ONNX Runtime tensor info");
        ONNXTensorElementDataType elem = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        size_t rank = 0;
        check(api_->GetTensorElementType(tensor, &elem), kExitRuntime, "ONNX Runtime element type");
        check(api_->GetDimensionsCount(tensor, &rank), kExitRuntime, "ONNX Runtime rank");
        std::vector<int64_t> dims(rank);
        check(api_->GetDimensions(tensor, dims.data(), rank), kExitRuntime, "ONNX Runtime dimensions");
        info.shape.assign(dims.begin(), dims.end());
        info.dtype = elem == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT     ? "float32"
                     : elem == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? "float16"
                     : elem == ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8   ? "uint8"
                     : elem == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8    ? "int8"
                                                                     : "element type " + std::to_string(static_cast<int>(elem));
      }
      api_->ReleaseTypeInfo(type);
      out.push_back(info);
    }
    return out;
  }

  // `got` reordered to the names in `want`; the counts are left to check_io.
  std::vector<IoInfo> by_name(const std::vector<IoInfo>& got, const std::vector<std::string>& want, const char* what) {
    if (got.size() != want.size()) return got;
    std::vector<IoInfo> out;
    std::vector<std::string> names;
    for (const auto& g : got) names.push_back(g.name);
    for (const auto& name : want) {
      const IoInfo* found = nullptr;
      for (const auto& g : got)
        if (g.name == name) found = &g;
      if (found == nullptr)
        bad_input(options_.path + ": the ONNX graph's " + what + " are named " + join(names) + "; " +
                  article(state_form_name(options_.state_form)) + "-state artifact's are " + join(want) + " (no \"" + name + "\")");
      out.push_back(*found);
    }
    return out;
  }

  void copy_output(OrtValue* value, float* dst, const char* name) {
    const size_t numel = static_cast<size_t>(options_.height) * options_.width;
    OrtTensorTypeAndShapeInfo* info = nullptr;
    check(api_->GetTensorTypeAndShape(value, &info), kExitRuntime, std::string("ONNX Runtime output ") + name);
    size_t count = 0;
    ONNXTensorElementDataType elem = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    OrtStatus* s1 = api_->GetTensorShapeElementCount(info, &count);
    OrtStatus* s2 = s1 ? nullptr : api_->GetTensorElementType(info, &elem);
    api_->ReleaseTensorTypeAndShapeInfo(info);
    check(s1 ? s1 : s2, kExitRuntime, std::string("ONNX Runtime output ") + name);
    if (count != numel || elem != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
      runtime_failure(options_.path + ": output \"" + name + "\" has " + std::to_string(count) +
                      " elements (element type " + std::to_string(static_cast<int>(elem)) + "), expected " +
                      std::to_string(numel) + " float32");
    void* data = nullptr;
    check(api_->GetTensorMutableData(value, &data), kExitRuntime, std::string("ONNX Runtime output ") + name);
    std::memcpy(dst, data, numel * sizeof(float));
  }

  LoadOptions options_;
  const OrtApi* api_ = nullptr;
  OrtEnv* env_ = nullptr;
  OrtSessionOptions* session_options_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_info_ = nullptr;
  OrtAllocator* allocator_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const LoadOptions& options) { return std::make_unique<OrtBackend>(options); }

}  // namespace backdrop
