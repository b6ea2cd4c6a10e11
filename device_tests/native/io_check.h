// backdrop-runner: checks of a loaded artifact's inputs and outputs against the state form's
// contract (backdrop/core/contract.py io_specs) and the sequence's frame size.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "backend.h"

namespace backdrop {

// One input or output as the runtime reports it.
struct IoInfo {
  std::string name;               // "" where the runtime binds by position (ExecuTorch)
  std::string kind = "tensor";    // anything else: not a tensor (e.g. "Int", "Bool")
  std::string dtype;              // "float32", ...
  std::vector<long long> shape;   // < 0: dynamic
};

// Throws bad_input unless `path` is a readable, non-empty file.
inline void check_readable(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) bad_input(std::string(what) + " " + path + " does not exist or cannot be read");
  if (f.tellg() <= 0) bad_input(std::string(what) + " " + path + " is empty");
}

inline std::vector<std::string> expected_inputs(StateForm form) {
  return form == StateForm::kExplicit ? std::vector<std::string>{"frame", "prev_mask"}
                                      : std::vector<std::string>{"frame", "reset"};
}

inline std::vector<std::string> expected_outputs(StateForm form) {
  return form == StateForm::kExplicit ? std::vector<std::string>{"mask", "next_mask"} : std::vector<std::string>{"mask"};
}

inline std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// "an explicit", "a native"
inline std::string article(const std::string& word) {
  return (word.empty() || std::string("aeiou").find(word[0]) == std::string::npos ? "a " : "an ") + word;
}

inline std::string plural(size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

// Checks counts, kinds, dtypes and shapes; `inputs`/`outputs` are in binding order.
// `what` names the thing checked, e.g. "the .pte's forward", "the ONNX graph".
inline void check_io(const std::string& path, const std::string& what, StateForm form, int height, int width,
                     const std::vector<IoInfo>& inputs, const std::vector<IoInfo>& outputs, bool positional,
                     const std::string& sequence = "") {
  const auto want_in = expected_inputs(form), want_out = expected_outputs(form);
  if (inputs.size() != want_in.size() || outputs.size() != want_out.size()) {
    std::string hint;
    if (form == StateForm::kExplicit && inputs.size() == 2 && outputs.size() == 1)
      hint = " (a native-state artifact? pass --state-form native)";
    else if (form == StateForm::kNative && inputs.size() == 2 && outputs.size() == 2)
      hint = " (an explicit-state artifact? pass --state-form explicit)";
    bad_input(path + ": " + what + " takes " + plural(inputs.size(), "input") + " and returns " +
              plural(outputs.size(), "output") + "; " + article(state_form_name(form)) + "-state artifact takes " +
              plural(want_in.size(), "input") + " (" + join(want_in) + ") and returns " +
              plural(want_out.size(), "output") + " (" + join(want_out) + ")" + hint);
  }
  const long long h = height, w = width;
  const std::vector<long long> frame{1, 3, h, w}, plane{1, 1, h, w}, flag{1};
  const std::string seq = sequence.empty() ? std::string("the sequence") : "the sequence " + sequence;
  auto check = [&](const IoInfo& got, const std::string& role, size_t index, bool input,
                   const std::vector<long long>& want) {
    const std::string label = std::string(input ? "input" : "output") + " " +
                              (positional ? std::to_string(index) + " (" + role + ")" : "\"" + got.name + "\"");
    if (got.kind != "tensor") bad_input(path + ": the model's " + label + " is a " + got.kind + ", expected a float32 tensor");
    if (got.dtype != "float32")
      bad_input(path + ": the model's " + label + " is " + got.dtype + ", expected float32 (the runner feeds float32)");
    if (got.shape != want) {
      if (role == "reset")
        bad_input(path + ": the model's " + label + " is " + shape_str(got.shape) + ", expected " + shape_str(want));
      bad_input(path + ": the model's " + label + " is " + shape_str(got.shape) + " but " + seq + " is " +
                std::to_string(height) + "x" + std::to_string(width) + " (" + role + " " + shape_str(want) +
                "): artifact and sequence are of different buckets");
    }
  };
  check(inputs[0], want_in[0], 0, true, frame);
  check(inputs[1], want_in[1], 1, true, form == StateForm::kExplicit ? plane : flag);
  for (size_t i = 0; i < outputs.size(); ++i) check(outputs[i], want_out[i], i, false, plane);
}

}  // namespace backdrop
