// Errors inside the runtime are C++ exceptions; the ABI layer turns them into
// AOTITorchError codes and this thread's last-error message (abi/guard.h).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mps_shim {

// Any failure the user can act on: bad handle, bad argument, compile error...
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A Metal source that does not compile; the message carries the diagnostics.
class CompileError : public Error {
 public:
  using Error::Error;
};

// An ATen fallback op (csrc/ops/) rejected its arguments: shapes, dtypes, options.
class OpError : public Error {
 public:
  using Error::Error;
};

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(concat(parts...));
}

#define MPS_SHIM_CHECK(cond, ...) \
  do {                            \
    if (!(cond)) ::mps_shim::fail(__VA_ARGS__); \
  } while (0)

}  // namespace mps_shim
