// The system C++ compiler the host backend translates Metal into, and the
// flags it compiles kernels with.
#pragma once

#include <string>
#include <vector>

namespace mps_shim::host {

struct Toolchain {
  std::vector<std::string> compiler;  // $CXX split on spaces, default g++
  std::string identity;  // resolved path, size and mtime of the compiler, and the CPU (-march=native)
  std::vector<std::string> flags;  // code generation flags; part of the cache key
  std::string version() const;     // first line of `compiler --version`
};

const Toolchain& toolchain();

}  // namespace mps_shim::host
