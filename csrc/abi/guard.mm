#include "abi/guard.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "runtime/backend_registry.h"
#include "runtime/command_queue.h"
#include "util/error.h"

namespace mps_shim::abi {

#define MPS_SHIM_SAME_CODE(Kind, CODE) \
  static_assert(int32_t(ErrorKind::Kind) == CODE, "ErrorKind::" #Kind " differs from " #CODE " in mps_shim.h")
MPS_SHIM_SAME_CODE(None, MPS_SHIM_ERROR_NONE);
MPS_SHIM_SAME_CODE(Runtime, MPS_SHIM_ERROR_RUNTIME);
MPS_SHIM_SAME_CODE(InvalidHandle, MPS_SHIM_ERROR_INVALID_HANDLE);
MPS_SHIM_SAME_CODE(Argument, MPS_SHIM_ERROR_ARGUMENT);
MPS_SHIM_SAME_CODE(Compile, MPS_SHIM_ERROR_COMPILE);
MPS_SHIM_SAME_CODE(KernelNotFound, MPS_SHIM_ERROR_KERNEL_NOT_FOUND);
MPS_SHIM_SAME_CODE(Dispatch, MPS_SHIM_ERROR_DISPATCH);
MPS_SHIM_SAME_CODE(CommandBlock, MPS_SHIM_ERROR_COMMAND_BLOCK);
MPS_SHIM_SAME_CODE(OutOfMemory, MPS_SHIM_ERROR_OUT_OF_MEMORY);
MPS_SHIM_SAME_CODE(Op, MPS_SHIM_ERROR_OP);
MPS_SHIM_SAME_CODE(Engine, MPS_SHIM_ERROR_ENGINE);
MPS_SHIM_SAME_CODE(Internal, MPS_SHIM_ERROR_INTERNAL);
MPS_SHIM_SAME_CODE(Size, MPS_SHIM_ERROR_SIZE);
MPS_SHIM_SAME_CODE(KernelReported, MPS_SHIM_ERROR_KERNEL_REPORTED);
MPS_SHIM_SAME_CODE(KernelCheck, MPS_SHIM_ERROR_KERNEL_CHECK);
#undef MPS_SHIM_SAME_CODE

namespace {

// seq tells failures apart: 0 means none, each recorded failure gets the next number.
struct Failure {
  std::string message;
  ErrorKind kind = ErrorKind::None;
  uint64_t seq = 0;
};

thread_local Failure last;
std::atomic<uint64_t> next_seq{1};

// The first failure since the slot was last taken or read; later ones do not replace it.
std::mutex& pending_mutex() {
  static auto* m = new std::mutex();
  return *m;
}
Failure& pending() {
  static auto* f = new Failure();
  return *f;
}

bool abort_on_error() {
  const char* v = std::getenv("MPS_SHIM_ABORT_ON_ERROR");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

void record(const char* api, ErrorKind kind, const char* message) noexcept {
  last.kind = kind;
  last.seq = next_seq.fetch_add(1);
  try {
    last.message = concat("[", api, "] ", message);
  } catch (...) {
    last.kind = ErrorKind::OutOfMemory;  // out of memory while reporting: keep the old text
  }
  if (abort_on_error()) {
    std::fprintf(stderr, "mps_shim: %s\nmps_shim: aborting (MPS_SHIM_ABORT_ON_ERROR is set)\n",
                 last.message.c_str());
    std::fflush(stderr);
    std::abort();
  }
  try {
    CommandQueue::note_failure(last.message);
    std::lock_guard<std::mutex> lock(pending_mutex());
    if (pending().seq == 0) pending() = last;
  } catch (...) {
  }
}

}  // namespace

void record_exception(const char* api) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    record(api, e.kind(), e.what());
  } catch (const std::bad_alloc&) {
    record(api, ErrorKind::OutOfMemory, "out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    record(api, ErrorKind::Internal, e.what());
  } catch (...) {
    record(api, ErrorKind::Internal, "unknown C++ exception");
  }
}

const char* last_error_message() noexcept { return last.message.c_str(); }
int32_t last_error_kind() noexcept { return int32_t(last.kind); }

bool take_pending_error() noexcept {
  std::lock_guard<std::mutex> lock(pending_mutex());
  if (pending().seq == 0) return false;
  std::swap(last, pending());
  pending() = Failure{};
  return true;
}

void mark_last_error_read() noexcept {
  std::lock_guard<std::mutex> lock(pending_mutex());
  if (last.seq != 0 && pending().seq == last.seq) pending() = Failure{};
}

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

void create_library(const char* source, const std::vector<std::string>& include_dirs,
                    AOTIMetalShaderLibraryHandle* library_handle, CompileMode mode) {
  check_out(library_handle, "library_handle");
  MPS_SHIM_CHECK(source != nullptr, "null Metal source");
  const CompileOptions options = resolve_compile_options(include_dirs, mode);
  auto* lib = new ShaderLibrary(backend().compile(source, options));
  std::unique_ptr<ShaderLibrary> owned(lib);
  run_requested_compile_checks(source, options);
  owned.release();
  libraries().add(lib);
  *library_handle = reinterpret_cast<AOTIMetalShaderLibraryHandle>(lib);
}

void get_function(AOTIMetalShaderLibraryHandle library_handle, const char* name,
                  const std::vector<ConstantSetting>& constants, AOTIMetalKernelFunctionHandle* function_handle) {
  check_out(function_handle, "function_handle");
  MPS_SHIM_CHECK(name != nullptr, "null kernel name");
  KernelFunction& f = libraries().get(library_handle)->function(name, constants);
  kernel_functions().add(&f);  // made at its first request: registered then (adding again is harmless)
  *function_handle = reinterpret_cast<AOTIMetalKernelFunctionHandle>(&f);
}

}  // namespace mps_shim::abi
