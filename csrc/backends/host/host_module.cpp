#include "backends/host/host_module.h"

#include <dlfcn.h>

#include <algorithm>

#include "backends/host/executor.h"
#include "backends/host/metal_include/host/mps_host_launch.h"
#include "runtime/checks.h"
#include "util/error.h"

namespace mps_shim::host {

namespace {

// The fiber engine's per-thread state, shared by every module (mps_shim_launch::fiber_slot);
// kept for the thread's life.
void** fiber_slot() {
  static thread_local void* slot = nullptr;
  return &slot;
}

using kernel_checks::CheckKind;
static_assert(int(CheckKind::Barrier) == MPS_SHIM_CHECK_SYNC_BARRIER &&
              int(CheckKind::SimdBarrier) == MPS_SHIM_CHECK_SYNC_SIMD &&
              int(CheckKind::InactiveLane) == MPS_SHIM_CHECK_INACTIVE_LANE &&
              int(CheckKind::OutOfBounds) == MPS_SHIM_CHECK_OUT_OF_BOUNDS &&
              int(CheckKind::Misaligned) == MPS_SHIM_CHECK_MISALIGNED &&
              int(CheckKind::ThreadgroupBounds) == MPS_SHIM_CHECK_THREADGROUP_BOUNDS &&
              int(CheckKind::Race) == MPS_SHIM_CHECK_RACE && int(CheckKind::Uninitialized) == MPS_SHIM_CHECK_UNINITIALIZED);

// A checked module's report (mps_host_checked.h), into the dispatch's sink.
void check_report(void* sink, const mps_shim_check_report* r) {
  if (r->kind < MPS_SHIM_CHECK_SYNC_BARRIER || r->kind > MPS_SHIM_CHECK_UNINITIALIZED) return;
  kernel_checks::RawReport x;
  x.kind = CheckKind(r->kind);
  for (int d = 0; d < 3; ++d) x.group[d] = r->group[d], x.in_group[d] = r->in_group[d], x.in_grid[d] = r->in_grid[d];
  x.simd_group = r->simd_group;
  x.simd_lane = r->simd_lane;
  x.other_thread = r->other_thread;
  x.lane = r->lane;
  x.buffer = r->buffer;
  x.is_write = r->is_write;
  x.other_is_write = r->other_is_write;
  x.offset = r->offset;
  x.extent = r->extent;
  x.before = r->before;
  x.access_size = r->access_size;
  x.alignment = r->alignment;
  if (r->what) x.what = r->what;
  x.line = int(r->line);
  x.other_line = int(r->other_line);
  if (r->file) x.file = r->file;
  if (r->other_file) x.other_file = r->other_file;
  x.pcs.assign(r->pcs, r->pcs + std::min<uint32_t>(r->n_pcs, MPS_SHIM_CHECK_MAX_PCS));
  x.other_pcs.assign(r->other_pcs, r->other_pcs + std::min<uint32_t>(r->n_other_pcs, MPS_SHIM_CHECK_MAX_PCS));
  static_cast<kernel_checks::Sink*>(sink)->add(std::move(x));
}

// Enough threads per task that scheduling costs vanish next to the work.
constexpr uint64_t kMinThreadsPerTask = 32768;

class LoadedModule : public HostModule {
 public:
  // The dlopen handle is not kept: the module is never closed (see the destructor).
  LoadedModule(const mps_shim_kernel_record* table, uint32_t count) : table_(table) {
    for (uint32_t i = 0; i < count; ++i) {
      const mps_shim_kernel_record& r = table[i];
      KernelInfo info;
#define MPS_SHIM_READ_FIELD(type, field, json_key) to.field = decltype(to.field)(from.field);
      {
        auto& to = info;
        const auto& from = r;
        MPS_SHIM_KERNEL_FIELDS(MPS_SHIM_READ_FIELD)
      }
      for (uint32_t p = 0; p < r.param_count; ++p) {
        auto& to = info.params.emplace_back();
        const auto& from = r.params[p];
        MPS_SHIM_PARAM_FIELDS(MPS_SHIM_READ_FIELD)
      }
#undef MPS_SHIM_READ_FIELD
      info.compiled = true;
      kernels_.push_back(std::move(info));
    }
  }
  // The module stays mapped for the process's life. AOTInductor models delete
  // their libraries from static destructors, which can run while the dynamic
  // loader finalises objects at exit; unloading a module then left the loader
  // calling into unmapped code (a crash at exit with two models loaded). One
  // mapping serves every library built from the same source, so the cost is
  // bounded by the number of distinct kernel sources.
  ~LoadedModule() override = default;

  const std::vector<KernelInfo>& kernels() const override { return kernels_; }

  void launch(size_t index, void* const* args, const LaunchGrid& grid, Engine engine) override {
    const bool fibers = engine == Engine::Fibers;
    MPS_SHIM_CHECK_AS(EngineError, !fibers || table_[index].fiber_entry, "kernel '", kernels_[index].name,
                      "' has no fiber entry point (only lane-loop kernels do)");
    int32_t failure = MPS_SHIM_LAUNCH_OK;
    mps_shim_launch L{args, {}, {}, {}, &failure, grid.threadgroup_offsets, fiber_slot,
                      grid.extents, grid.extents_before, grid.threadgroup_lengths, grid.check_sink,
                      grid.check_sink ? check_report : nullptr};
    uint64_t total_groups = 1, group_threads = 1;
    for (int d = 0; d < 3; ++d) {
      L.grid[d] = grid.grid[d];
      L.group[d] = grid.group[d];
      L.groups[d] = (grid.grid[d] + grid.group[d] - 1) / grid.group[d];
      total_groups *= L.groups[d];
      group_threads *= grid.group[d];
    }
    struct Ctx {
      mps_shim_entry_fn entry;
      const mps_shim_launch* launch;
    } ctx{fibers ? table_[index].fiber_entry : table_[index].entry, &L};
    const uint64_t grain = fibers || table_[index].execution == MPS_SHIM_EXECUTION_FIBERS
                               ? 1
                               : (kMinThreadsPerTask + group_threads - 1) / group_threads;
    Executor::instance().parallel_for(
        total_groups, grain,
        [](void* c, uint64_t first, uint64_t end) {
          const Ctx* x = static_cast<const Ctx*>(c);
          x->entry(x->launch, first, end);
        },
        &ctx);
    MPS_SHIM_CHECK_AS(DispatchError, failure != MPS_SHIM_LAUNCH_DEADLOCK, "kernel '", kernels_[index].name,
                   "': its threads waited for each other forever (every running thread of a threadgroup was "
                   "blocked at a barrier or SIMD-group function that could not complete, or spun without "
                   "progress); the dispatch was stopped");
    MPS_SHIM_CHECK_AS(DispatchError, failure != MPS_SHIM_LAUNCH_LANE_EXCHANGE, "kernel '", kernels_[index].name,
                   "': internal error: the lane-loop translation met a SIMD-group function it had not "
                   "prepared for (a bug of mps_shim: please report it with the kernel; MPS_SHIM_LANE_LOOPS=0 "
                   "runs kernels on fibers)");
    MPS_SHIM_CHECK_AS(OutOfMemoryError, failure != MPS_SHIM_LAUNCH_NO_MEMORY, "kernel '", kernels_[index].name,
                   "': out of memory for the threadgroup's thread stacks or SIMD-group exchange");
  }

 private:
  const mps_shim_kernel_record* table_;
  std::vector<KernelInfo> kernels_;
};

class ModuleKernel : public CompiledKernel {
 public:
  ModuleKernel(std::shared_ptr<HostModule> module, size_t index, KernelInfo info)
      : module_(std::move(module)), index_(index), info_(std::move(info)) {}
  const KernelInfo& info() const override { return info_; }
  void launch(void* const* args, const LaunchGrid& grid, Engine engine) override {
    module_->launch(index_, args, grid, engine);
  }

 private:
  std::shared_ptr<HostModule> module_;
  size_t index_;
  KernelInfo info_;
};

}  // namespace

std::shared_ptr<CompiledKernel> module_kernel(std::shared_ptr<HostModule> module, size_t index, KernelInfo info) {
  return std::make_shared<ModuleKernel>(std::move(module), index, std::move(info));
}

std::shared_ptr<HostModule> load_module(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  MPS_SHIM_CHECK_AS(EngineError, handle != nullptr, "cannot load compiled kernels from ", path, ": ", dlerror());
  const auto* abi = static_cast<const uint32_t*>(dlsym(handle, "mps_shim_module_abi"));
  const auto* count = static_cast<const uint32_t*>(dlsym(handle, "mps_shim_kernel_count"));
  const auto* table = static_cast<const mps_shim_kernel_record*>(dlsym(handle, "mps_shim_kernel_table"));
  if (!abi || !count || !table || *abi != MPS_SHIM_MODULE_ABI) {
    dlclose(handle);
    fail<EngineError>("compiled kernel module ", path, " has no kernel table of ABI version ", MPS_SHIM_MODULE_ABI);
  }
  return std::make_shared<LoadedModule>(table, *count);
}

}  // namespace mps_shim::host
