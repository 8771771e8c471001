#include "abi/guard.h"

#include "runtime/command_queue.h"
#include "util/error.h"

namespace mps_shim::abi {

namespace {
thread_local std::string last_error;
}

void set_last_error(const char* api, const char* message) {
  try {
    last_error = concat("[", api, "] ", message);
    CommandQueue::note_failure(last_error);
  } catch (...) {
    // Out of memory while reporting: keep whatever message is there.
  }
}

const char* last_error_message() { return last_error.c_str(); }

// Registries live for the whole process: handles may be used from static destructors.
HandleRegistry<Tensor>& tensors() {
  static auto* r = new HandleRegistry<Tensor>("tensor");
  return *r;
}
HandleRegistry<ShaderLibrary>& libraries() {
  static auto* r = new HandleRegistry<ShaderLibrary>("shader library");
  return *r;
}
HandleRegistry<KernelFunction>& kernel_functions() {
  static auto* r = new HandleRegistry<KernelFunction>("kernel function");
  return *r;
}

}  // namespace mps_shim::abi
