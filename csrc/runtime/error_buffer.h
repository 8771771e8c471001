// The buffer kernels report errors into: c10::metal::ErrorMessages from
// PyTorch's c10/metal/error.h, which TORCH_REPORT_ERROR fills. As in
// PyTorch's MPS stream there is one per process, bound wherever a caller
// asks; the runtime reads and empties it after each dispatch that bound it.
#pragma once

#include <optional>
#include <string>

namespace mps_shim {

class ErrorBuffer {
 public:
  static ErrorBuffer& instance();
  // Device memory holding the struct, zeroed.
  void* data();
  // The first message reported since the last call, as "message (file:line, in func)",
  // with a count of the others; the buffer is emptied. None when no kernel reported.
  std::optional<std::string> take();

 private:
  void* data_ = nullptr;
};

}  // namespace mps_shim
