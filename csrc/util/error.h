// Errors inside the runtime are C++ exceptions; the ABI layer turns them into
// AOTITorchError codes, this thread's last-error message and its kind
// (abi/guard.h). The kind travels as a code, never as message text: throw the
// class that says what went wrong, and Python maps the code to its exception.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mps_shim {

// The codes of mps_shim_last_error_kind(); the public header's MPS_SHIM_ERROR_*
// carry the same values (abi/guard.mm checks that they agree).
enum class ErrorKind : int32_t {
  None = 0,
  Runtime = 1,         // a failure with no finer kind: tensor arguments, files, processes
  InvalidHandle = 2,   // null, deleted or foreign handle or buffer pointer
  Argument = 3,        // a kernel argument bound badly (index, kind, size)
  Compile = 4,         // Metal source that does not compile; the message carries the diagnostics
  KernelNotFound = 5,  // no kernel of that name in the library
  Dispatch = 6,        // a dispatch rejected (grid, threadgroup size, unbound argument, skipped)
  CommandBlock = 7,    // a command block failed because a call inside it failed
  OutOfMemory = 8,     // an allocation failed or exceeds the device's memory
  Op = 9,              // an ATen fallback op rejected its arguments
  Engine = 10,         // the engine could not run a kernel (deadlocked threadgroup, engine limit, bad module)
  Internal = 11,       // an unexpected exception: a bug in mps_shim
  Size = 12,           // a grid or threadgroup size out of range
  KernelReported = 13, // a kernel reported an error through c10's error buffer
  KernelCheck = 14,    // checked mode found problems in a dispatch (runtime/checks.h)
};

// Any failure the user can act on. Throw a subclass when a finer kind applies.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::Runtime)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

#define MPS_SHIM_ERROR_CLASS(Name, Kind)                                              \
  class Name : public Error {                                                         \
   public:                                                                            \
    explicit Name(const std::string& message) : Error(message, ErrorKind::Kind) {} \
  }

MPS_SHIM_ERROR_CLASS(InvalidHandleError, InvalidHandle);
MPS_SHIM_ERROR_CLASS(ArgumentError, Argument);
MPS_SHIM_ERROR_CLASS(CompileError, Compile);
MPS_SHIM_ERROR_CLASS(KernelNotFoundError, KernelNotFound);
MPS_SHIM_ERROR_CLASS(DispatchError, Dispatch);
MPS_SHIM_ERROR_CLASS(CommandBlockError, CommandBlock);
MPS_SHIM_ERROR_CLASS(OutOfMemoryError, OutOfMemory);
// An ATen fallback op (csrc/ops/) rejected its arguments: shapes, dtypes, options.
MPS_SHIM_ERROR_CLASS(OpError, Op);
MPS_SHIM_ERROR_CLASS(EngineError, Engine);
MPS_SHIM_ERROR_CLASS(SizeError, Size);
MPS_SHIM_ERROR_CLASS(KernelReportedError, KernelReported);
MPS_SHIM_ERROR_CLASS(KernelCheckError, KernelCheck);

#undef MPS_SHIM_ERROR_CLASS

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// fail("...") throws Error; fail<DispatchError>("...") throws that kind.
template <typename E = Error, typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw E(concat(parts...));
}

#define MPS_SHIM_CHECK(cond, ...) \
  do {                            \
    if (!(cond)) ::mps_shim::fail(__VA_ARGS__); \
  } while (0)

// MPS_SHIM_CHECK_AS(DispatchError, cond, "message", ...) throws that kind.
#define MPS_SHIM_CHECK_AS(ErrorType, cond, ...) \
  do {                                          \
    if (!(cond)) ::mps_shim::fail<::mps_shim::ErrorType>(__VA_ARGS__); \
  } while (0)

}  // namespace mps_shim
