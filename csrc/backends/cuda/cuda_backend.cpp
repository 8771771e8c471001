// The CUDA backend: Metal source -> preprocess -> parse -> CUDA C++
// (cuda_translation.h) -> NVRTC -> cubin (cached) -> the driver API. Device
// memory is the GPU's (cuMemAlloc); dispatches are asynchronous on the
// context's default stream, and copies to the host wait for them.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "backends/common/front_end_info.h"
#include "backends/cuda/cuda_api.h"
#include "backends/cuda/cuda_compiler.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/cuda_translation.h"
#include "backends/host/module_builder.h"
#include "runtime/backend_registry.h"
#include "util/error.h"
#include "util/json.h"

namespace mps_shim::cuda {

namespace {

// One loaded cubin and the entry points of its kernels.
struct CudaModule {
  CUmodule module = nullptr;
  std::vector<CUfunction> entries;
};

class CudaKernel : public CompiledKernel {
 public:
  CudaKernel(std::shared_ptr<CudaModule> module, CUfunction entry, KernelInfo info,
             std::vector<EntryParamInfo> params)
      : module_(std::move(module)), entry_(entry), info_(std::move(info)), params_(std::move(params)) {}

  ~CudaKernel() override {
    if (staging_.empty()) return;
    const Device& dev = Device::instance();
    for (const auto& [binding, ptr] : staging_) dev.api->cuMemFree(ptr);
  }

  const KernelInfo& info() const override { return info_; }

  void launch(void* const* args, const LaunchGrid& grid, Engine) override {
    const Device& dev = Device::instance();
    dev.make_current();
    static const unsigned char zeros[4096] = {};
    std::vector<void*> values;  // what each kernel parameter is read from
    std::vector<CUdeviceptr> addresses(params_.size() + 1, 0);
    for (size_t i = 0; i < params_.size(); ++i) {
      const EntryParamInfo& p = params_[i];
      const bool bytes = !p.absent && grid.host_bytes && grid.host_bytes[p.binding];
      void* arg = p.absent || p.kind == EntryParam::ThreadgroupOffset ? nullptr : args[p.binding];
      switch (p.kind) {
        case EntryParam::Address:
          addresses[i] = bytes ? staged(p.binding, arg) : reinterpret_cast<CUdeviceptr>(arg);
          values.push_back(&addresses[i]);
          break;
        case EntryParam::ReferenceAddress:
          addresses[i] = bytes ? 0 : reinterpret_cast<CUdeviceptr>(arg);
          values.push_back(&addresses[i]);
          break;
        case EntryParam::ReferenceValue:
          values.push_back(bytes ? arg : const_cast<unsigned char*>(zeros));
          break;
        case EntryParam::ThreadgroupOffset:
          values.push_back(const_cast<uint32_t*>(grid.threadgroup_offsets ? &grid.threadgroup_offsets[p.binding]
                                                                           : reinterpret_cast<const uint32_t*>(zeros)));
          break;
      }
    }
    struct { uint32_t grid[3], group[3]; } metal_grid;
    std::copy(grid.grid, grid.grid + 3, metal_grid.grid);
    std::copy(grid.group, grid.group + 3, metal_grid.group);
    values.push_back(&metal_grid);
    unsigned blocks[3];
    for (int d = 0; d < 3; ++d) blocks[d] = (grid.grid[d] + grid.group[d] - 1) / grid.group[d];
    const unsigned threads = grid.group[0] * grid.group[1] * grid.group[2];
    check_cuda(dev.api->cuLaunchKernel(entry_, blocks[0], blocks[1], blocks[2], threads, 1, 1, grid.threadgroup_bytes,
                                       nullptr, values.data(), nullptr),
               concat("launching kernel '", info_.name, "'").c_str());
  }

 private:
  // Bytes bound to a pointer parameter, copied to device memory (in order with the launch).
  CUdeviceptr staged(int binding, const void* bytes) {
    const Device& dev = Device::instance();
    CUdeviceptr& slot = staging_[binding];
    if (!slot) check_cuda(dev.api->cuMemAlloc(&slot, 4096), "cuMemAlloc");
    check_cuda(dev.api->cuMemcpyHtoDAsync(slot, bytes, 4096, nullptr), "cuMemcpyHtoDAsync");
    return slot;
  }

  std::shared_ptr<CudaModule> module_;
  CUfunction entry_;
  KernelInfo info_;
  std::vector<EntryParamInfo> params_;
  std::map<int, CUdeviceptr> staging_;
};

// The whole library translated and compiled for `arch` for its errors alone
// (nothing is loaded); assembled unoptimised where ptxas fails, as a kernel's
// module then is.
void compile_for_errors(const host::ParsedSource& src, const std::string& arch) {
  const CudaTranslation t = translate_for_cuda(src.preprocessed, src.lexed, src.parsed, true, {}, {});
  try {
    compile_cuda(t.source, arch);
  } catch (const CompileError& e) {
    if (!is_ptxas_failure(e.what())) throw;
    compile_cuda(t.source, arch, true);
  }
}

class CudaLibrary : public CompiledLibrary {
 public:
  CudaLibrary(std::shared_ptr<const host::ParsedSource> src, bool checked_asked)
      : src_(std::move(src)), checked_asked_(checked_asked) {
    for (const frontend::KernelDecl& k : src_->parsed.kernels) front_end_infos_.push_back(lowering::front_end_info(k));
    infos_ = front_end_infos_;
    for (const frontend::FunctionConstant& c : src_->parsed.function_constants)
      constants_.push_back(lowering::constant_info(c));
    compiled_.resize(infos_.size());
  }

  size_t kernel_count() const override { return infos_.size(); }
  KernelInfo kernel_info(size_t index) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return infos_.at(index);
  }
  const std::vector<FunctionConstantInfo>& function_constants() const override { return constants_; }

  std::shared_ptr<CompiledKernel> kernel(size_t index, const FunctionConstantValues& values) override {
    const std::string key = function_constant_key(values, constants_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = compiled_.at(index).find(key);
      if (it != compiled_[index].end()) return it->second;
    }
    std::vector<std::shared_ptr<CompiledKernel>> made = compile({index}, values);
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, inserted] = compiled_[index].emplace(key, made[0]);
    if (key.empty()) infos_[index] = it->second->info();
    return it->second;
  }

  void compile_all() override {
    if (infos_.empty()) {  // no kernel to load, but Metal still rejects a library that does not compile
      compile_for_errors(*src_, "compute_" + Device::instance().arch.substr(3));
      return;
    }
    std::vector<size_t> todo;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < compiled_.size(); ++i)
        if (!compiled_[i].count("")) todo.push_back(i);
    }
    if (todo.empty()) return;
    std::vector<std::shared_ptr<CompiledKernel>> made = compile(todo, {});
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < todo.size(); ++i) {
      compiled_[todo[i]].emplace("", made[i]);
      infos_[todo[i]] = made[i]->info();
    }
  }

 private:
  // One module holding `indices`, specialised with `values`.
  std::vector<std::shared_ptr<CompiledKernel>> compile(const std::vector<size_t>& indices,
                                                       const FunctionConstantValues& values) {
    const bool all = indices.size() == infos_.size();
    const CudaTranslation t =
        translate_for_cuda(src_->preprocessed, src_->lexed, src_->parsed, all, indices, values);
    const Device& dev = Device::instance();
    std::string cubin;
    bool unoptimised = false;
    try {
      cubin = compile_cuda(t.source, dev.arch);
    } catch (const CompileError& e) {
      // ptxas (NVRTC 12.9 and 13.0, sm_90) can fail on code NVRTC generated
      // itself: "(C7600) Register allocation failed" for a kernel that runs two
      // partial-group SIMD functions after some lanes returned. The driver's
      // assembler fails alike. Each kernel then gets a module of its own, and
      // those ptxas still rejects are assembled unoptimised (-O0).
      if (!is_ptxas_failure(e.what())) throw;
      if (indices.size() > 1) {
        std::vector<std::shared_ptr<CompiledKernel>> out;
        for (size_t index : indices) out.push_back(compile({index}, values).at(0));
        return out;
      }
      cubin = compile_cuda(t.source, dev.arch, true);
      unoptimised = true;
    }
    dev.make_current();
    auto module = std::make_shared<CudaModule>();
    check_cuda(dev.api->cuModuleLoadData(&module->module, cubin.data()), "cuModuleLoadData");
    std::vector<std::shared_ptr<CompiledKernel>> out;
    for (size_t i = 0; i < t.kernels.size(); ++i) {
      CUfunction f = nullptr;
      check_cuda(dev.api->cuModuleGetFunction(&f, module->module, concat("mps_shim_entry_", i).c_str()),
                 "cuModuleGetFunction");
      module->entries.push_back(f);
      KernelInfo info = with_facts(front_end_infos_.at(indices[i]), *module, t.kernels[i], i);
      info.constant_values = lowering::constant_values(src_->parsed, values);
      info.compiled = true;
      info.execution = KernelExecution::Independent;
      info.execution_note = "one CUDA thread per Metal thread; a threadgroup is a block, a SIMD-group a warp";
      if (unoptimised) info.execution_note += " (assembled with ptxas -O0: ptxas failed on it optimised)";
      if (checked_asked_) info.execution_note += " (not checked: checked mode runs on the host backend only)";
      out.push_back(std::make_shared<CudaKernel>(module, f, std::move(info), entry_params(t.kernels[i])));
    }
    return out;
  }

  // The front end's description with what the compiler worked out (the
  // module's facts array), and without the parameters absent from the
  // specialisation, as the host's kernel table has it.
  static KernelInfo with_facts(KernelInfo info, const CudaModule& module, const frontend::KernelDecl& k, size_t i) {
    const Device& dev = Device::instance();
    std::vector<unsigned> facts(1 + kFactsPerParam * k.params.size());
    CUdeviceptr at = 0;
    size_t bytes = 0;
    check_cuda(dev.api->cuModuleGetGlobal(&at, &bytes, module.module, concat("mps_shim_facts_", i).c_str()),
               "cuModuleGetGlobal");
    MPS_SHIM_CHECK_AS(EngineError, bytes == facts.size() * sizeof(unsigned), "kernel '", info.name,
                      "': its facts array has ", bytes, " bytes, expected ", facts.size() * sizeof(unsigned));
    check_cuda(dev.api->cuMemcpyDtoH(facts.data(), at, bytes), "cuMemcpyDtoH");
    info.max_threads = facts[0];
    std::vector<KernelParam> params;
    for (size_t j = 0; j < k.params.size(); ++j) {
      if (k.params[j].absent) continue;
      KernelParam p = info.params.at(j);
      p.value_size = facts[1 + kFactsPerParam * j];
      p.reference = int(facts[2 + kFactsPerParam * j]);
      p.writable = int(facts[3 + kFactsPerParam * j]);
      params.push_back(std::move(p));
    }
    info.params = std::move(params);
    return info;
  }

  std::shared_ptr<const host::ParsedSource> src_;
  const bool checked_asked_;  // MPS_SHIM_CHECKED / mps_shim.checked(): the sanitizers are the host's
  std::vector<FunctionConstantInfo> constants_;
  // Every parameter, as declared: the compiled kernels' infos leave out those a specialisation removes.
  std::vector<KernelInfo> front_end_infos_;
  mutable std::mutex mutex_;
  std::vector<KernelInfo> infos_;
  std::vector<std::map<std::string, std::shared_ptr<CompiledKernel>>> compiled_;
};

class CudaBackend : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  std::unique_ptr<CompiledLibrary> compile(const std::string& source, const CompileOptions& options) override {
    auto src = std::make_shared<const host::ParsedSource>(host::preprocess_source(source, options.include_dirs));
    const bool eager = options.mode == CompileMode::Eager ||
                       (options.mode == CompileMode::Auto && src->parsed.kernels.size() <= kMaxEagerKernels);
    auto library = std::make_unique<CudaLibrary>(std::move(src), options.checked);
    if (eager) library->compile_all();
    return library;
  }

  void* allocate(size_t nbytes) override {
    const Device& dev = Device::instance();
    dev.make_current();
    CUdeviceptr p = 0;
    if (dev.api->cuMemAlloc(&p, std::max<size_t>(nbytes, 1)) != 0) return nullptr;
    return reinterpret_cast<void*>(p);
  }
  void deallocate(void* ptr) override {
    const Device& dev = Device::instance();
    dev.make_current();
    dev.api->cuMemFree(reinterpret_cast<CUdeviceptr>(ptr));
  }
  bool host_addressable() const override { return false; }
  void copy(void* dst, const void* src, size_t nbytes, CopyKind kind) override {
    const Device& dev = Device::instance();
    dev.make_current();
    const auto d = reinterpret_cast<CUdeviceptr>(dst);
    const auto s = reinterpret_cast<CUdeviceptr>(src);
    switch (kind) {
      case CopyKind::HostToDevice: check_cuda(dev.api->cuMemcpyHtoD(d, src, nbytes), "cuMemcpyHtoD"); break;
      case CopyKind::DeviceToHost: check_cuda(dev.api->cuMemcpyDtoH(dst, s, nbytes), "cuMemcpyDtoH"); break;
      case CopyKind::DeviceToDevice: check_cuda(dev.api->cuMemcpyDtoD(d, s, nbytes), "cuMemcpyDtoD"); break;
    }
  }
  void synchronize() override {
    const Device& dev = Device::instance();
    dev.make_current();
    check_cuda(dev.api->cuCtxSynchronize(), "cuCtxSynchronize");
  }
  ops::OpBackend& ops() override { return cuda_ops(); }
  std::string info_json() const override {
    const Device& dev = Device::instance();
    return concat("\"device\": ", json_string(dev.name), ", \"arch\": ", json_string(dev.arch),
                  ", \"nvrtc\": ", json_string(nvrtc_version()),
                  ", \"gemm\": ", json_string(cuda_ops().gemm_provider()));
  }
};

// Why this machine cannot run the backend, or "".
std::string cuda_unavailable() {
  std::string why;
  if (!driver_api(&why)) return why;
  if (!nvrtc_api(&why)) return why;
  if (libcudacxx_include_dirs(&why).empty()) return why;
  return "";
}

MPS_SHIM_REGISTER_BACKEND("cuda", CudaBackend, cuda_unavailable);

// Every kernel of the library, translated and compiled by NVRTC for
// MPS_SHIM_CUDA_ARCH (default compute_90: to PTX, which is what the translation
// decides; ptxas, the driver's part, is left out) with no function constant set:
// no GPU needed.
void check_cuda_compile(const std::string& source, const CompileOptions& options) {
  const char* arch = std::getenv("MPS_SHIM_CUDA_ARCH");
  compile_for_errors(host::ParsedSource(host::preprocess_source(source, options.include_dirs)),
                     arch && *arch ? arch : "compute_90");
}

const bool check_registered = [] {
  register_compile_check("cuda", check_cuda_compile);
  return true;
}();

}  // namespace

}  // namespace mps_shim::cuda
