// The host backend: Metal source -> preprocess -> parse -> C++ -> system
// compiler -> shared object (cached) -> dlopen (host_library.h: each kernel
// when first used, or a library at once); device memory is host memory.
#include <cstdlib>
#include <cstring>

#include "backends/host/executor.h"
#include "backends/host/host_library.h"
#include "backends/host/kernel_cache.h"
#include "backends/host/ops/host_ops.h"
#include "backends/host/toolchain.h"
#include "runtime/backend_registry.h"
#include "util/error.h"
#include "util/json.h"

namespace mps_shim::host {

namespace {

class HostBackend : public Backend {
 public:
  const char* name() const override { return "host"; }

  std::unique_ptr<CompiledLibrary> compile(const std::string& source, const CompileOptions& options) override {
    return open_host_library(source, options);
  }

  void* allocate(size_t nbytes) override { return std::aligned_alloc(64, (nbytes + 63) / 64 * 64); }
  void deallocate(void* ptr) override { std::free(ptr); }
  bool host_addressable() const override { return true; }
  void copy(void* dst, const void* src, size_t nbytes, CopyKind) override { std::memmove(dst, src, nbytes); }
  void synchronize() override {}  // dispatches complete before they return
  ops::OpBackend& ops() override { return host_ops(); }

  std::string info_json() const override {
    const KernelCache& cache = KernelCache::instance();
    const Toolchain& tc = toolchain();
    std::string compiler;
    for (const std::string& w : tc.compiler) compiler += (compiler.empty() ? "" : " ") + w;
    return concat("\"compiler\": ", json_string(compiler), ", \"compiler_version\": ", json_string(tc.version()),
                  ", \"cache_dir\": ", json_string(cache.dir()), ", \"cache_disabled_reason\": ",
                  json_string(cache.disabled_reason()), ", \"threads\": ", Executor::instance().threads(),
                  ", \"gemm\": ", json_string(host_ops().gemm_provider()));
  }
};

// The CPU is always there; a missing compiler is reported when a library is compiled.
std::string host_unavailable() { return ""; }

MPS_SHIM_REGISTER_BACKEND("host", HostBackend, host_unavailable);

}  // namespace

}  // namespace mps_shim::host
