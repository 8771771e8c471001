#include "backends/host/ops/blas.h"

#include <dlfcn.h>

#include <cstdlib>
#include <vector>

#include "util/error.h"

namespace mps_shim::host {

namespace {

// scipy_openblas32 prefixes its symbols with `scipy_` so that it never clashes with another BLAS.
template <typename F>
F symbol(void* lib, const char* name) {
  for (const char* prefix : {"", "scipy_"}) {
    if (void* p = dlsym(lib, concat(prefix, name).c_str())) return reinterpret_cast<F>(p);
  }
  return nullptr;
}

// The folder holding libmps_shim.so; in an installed package, site-packages/mps_shim.
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("MPS_SHIM_BLAS"); env && *env) return {env};
  const std::string here = own_folder();
  if (!here.empty()) out.push_back(here + "/../scipy_openblas32/lib/libscipy_openblas.so");
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3", "libmkl_rt.so"})
    out.push_back(name);
  return out;
}

Blas load() {
  Blas b;
  std::string tried;
  for (const std::string& path : candidates()) {
    // RTLD_LOCAL: the BLAS's own symbols must not interpose on anything else in the process.
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      tried += concat(tried.empty() ? "" : ", ", path);
      continue;
    }
    b.sgemm = symbol<Blas::sgemm_t>(lib, "cblas_sgemm");
    b.dgemm = symbol<Blas::dgemm_t>(lib, "cblas_dgemm");
    if (b.sgemm && b.dgemm) {
      b.description = path;
      return b;
    }
    b = Blas{};
    tried += concat(tried.empty() ? "" : ", ", path, " (no cblas_sgemm)");
    dlclose(lib);
  }
  b.description = concat("none found (tried ", tried, "; set MPS_SHIM_BLAS to a CBLAS library)");
  return b;
}

}  // namespace

const Blas& blas() {
  static const Blas instance = load();
  return instance;
}

}  // namespace mps_shim::host
