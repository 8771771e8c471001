// Backends register themselves here, by name, with a factory and an
// availability check; MPS_SHIM_BACKEND picks one (default "host") the first
// time backend() is called. A backend that cannot run on this machine (no GPU,
// no driver) stays registered and says why, so `mps-shim info` can show it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backend.h"

namespace mps_shim {

struct BackendEntry {
  std::string name;
  std::unique_ptr<Backend> (*create)();
  std::string (*unavailable)();  // "" when the backend can run here, else why not
};

// Called from a static initializer of each backend (MPS_SHIM_REGISTER_BACKEND).
void register_backend(BackendEntry entry);
const std::vector<BackendEntry>& registered_backends();

// A backend that can compile a library without its device (the cuda backend's
// NVRTC needs no GPU) registers a check: it throws CompileError where the
// library does not compile for that backend.
using CompileCheck = void (*)(const std::string& source, const CompileOptions& options);
void register_compile_check(const std::string& backend, CompileCheck check);
// Runs the check of `backend`; throws EngineError when it has none or cannot run here.
void compile_check(const std::string& backend, const std::string& source, const CompileOptions& options);
// The backends MPS_SHIM_COMPILE_CHECK names (comma-separated): each library
// created is also compiled for them, so a test suite run on the host checks
// that every kernel it compiles translates for them too.
void run_requested_compile_checks(const std::string& source, const CompileOptions& options);

// The registered backends as JSON members for mps_shim_runtime_info:
// `"backends": {"host": "available", "cuda": "<why not>"}`.
std::string backends_json();

}  // namespace mps_shim

// Registers backend class T (default-constructible) as `name`; `unavailable`
// is a `std::string()` function returning "" when it can run.
#define MPS_SHIM_REGISTER_BACKEND(name, T, unavailable)                                            \
  static const bool mps_shim_backend_registered_##T = [] {                                        \
    ::mps_shim::register_backend(                                                                  \
        {name, []() -> std::unique_ptr<::mps_shim::Backend> { return std::make_unique<T>(); }, unavailable}); \
    return true;                                                                                   \
  }()
