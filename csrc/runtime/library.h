// Shader libraries and their kernel functions: argument binding and the
// dispatch rules of Metal's dispatchThreads as PyTorch uses them.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"
#include "util/error.h"

namespace mps_shim {

// One kernel of one specialisation: its argument bindings and dispatches.
class KernelFunction {
 public:
  // `constants`: the library's function constants, which info() refers to by index.
  KernelFunction(std::shared_ptr<CompiledKernel> compiled, const std::vector<FunctionConstantInfo>& constants);
  const KernelInfo& info() const { return compiled_->info(); }
  // JSON of info(), as one entry of the library's describe, plus the specialisation's "constants".
  const std::string& describe_json() const { return describe_; }

  void start_encoding();
  void set_tensor(unsigned index, const Tensor& tensor);
  void set_bytes(unsigned index, const void* data, size_t nbytes);
  // setThreadgroupMemoryLength: the length of the [[threadgroup(index)]] parameter's memory.
  void set_threadgroup_memory_length(unsigned index, size_t nbytes);
  // Binds the process's kernel error buffer (runtime/error_buffer.h); dispatches then fail with what a kernel reports.
  void set_error_buffer(unsigned index);
  // group_size == nullptr picks PyTorch's default; a grid with a zero extent is a no-op.
  void dispatch(const uint64_t* length, size_t dims, const uint64_t* group_size, size_t group_dims);
  void dispatch_single(uint64_t length, std::optional<uint64_t> group_size);

 private:
  // Metal's setBytes limit.
  static constexpr size_t kMaxBytes = 4096;
  // Indices of setThreadgroupMemoryLength: those of Metal's argument table.
  static constexpr unsigned kMaxThreadgroupIndices = 31;
  struct Binding {
    enum Kind { Unbound, Buffer, Bytes } kind = Unbound;
    void* address = nullptr;
    std::shared_ptr<Storage> keep_alive;  // a tensor's storage outlives the dispatch
    // Bound bytes: kMaxBytes, aligned for any Metal type, allocated on first use.
    std::unique_ptr<unsigned char[], void (*)(void*)> bytes{nullptr, std::free};
    size_t nbytes = 0;  // of `bytes` bound by the last set_bytes
  };
  const KernelParam& param_at(unsigned index, const char* what) const;
  void check_encoding(const char* what, ErrorKind kind) const;
  std::string describe_bindings() const;
  std::string binding_label(unsigned index, const KernelParam& p) const;
  void launch(const uint32_t grid[3], const uint32_t group[3]);
  void launch_checked(LaunchGrid& grid);
  const uint32_t* place_threadgroup_memory();

  std::shared_ptr<CompiledKernel> compiled_;
  std::string describe_;
  std::vector<const KernelParam*> by_binding_;  // the parameter bound at each buffer index
  std::vector<Binding> bindings_;
  std::vector<void*> args_;
  std::vector<uint8_t> host_bytes_;  // by binding: args_ holds set_arg_bytes' host memory
  bool error_buffer_bound_ = false;  // since start_encoding
  std::vector<const KernelParam*> threadgroup_params_;  // by [[threadgroup(n)]] index
  std::vector<int64_t> threadgroup_lengths_;            // -1: not set since start_encoding
  std::vector<uint32_t> threadgroup_offsets_;
  uint32_t threadgroup_bytes_ = 0;
  // start_encoding's queue epoch: encoding state ends with the command block.
  uint64_t encoding_epoch_ = ~uint64_t(0);
};

// A value for one function constant, as a caller gives it: by name, or by
// index when the name is empty; `data_type` 0 means the declared type.
struct ConstantSetting {
  std::string name;
  uint32_t index = 0;
  uint32_t data_type = 0;
  std::string bytes;
};

// A library's kernels, compiled on demand by its backend library. Each kernel
// and specialisation is one KernelFunction, made at its first request and
// owned by the library. Requests may come from any thread: two for the same
// function compile it once, others wait; different functions compile at once.
class ShaderLibrary {
 public:
  explicit ShaderLibrary(std::unique_ptr<CompiledLibrary> compiled);
  // The kernel `name` specialised with `constants` (empty: the default
  // specialisation). Throws KernelNotFoundError listing the kernels;
  // ArgumentError for an unknown constant, a value of the wrong type or size,
  // or a required constant the kernel reads that has no value; CompileError.
  KernelFunction& function(const std::string& name, const std::vector<ConstantSetting>& constants = {});
  // Compiles every kernel's default specialisation not compiled yet.
  void compile_all();
  // JSON of every kernel (what is known so far: see CompiledLibrary::kernels)
  // and the library's function constants. Valid until the next call that may
  // compile (function, compile_all) or the library's deletion.
  const std::string& describe_json();
  std::vector<KernelFunction*> functions();

 private:
  struct Slot {  // one function, made once
    std::mutex mutex;
    std::unique_ptr<KernelFunction> function;
  };
  FunctionConstantValues resolve(const KernelInfo& kernel, const std::vector<ConstantSetting>& constants) const;

  std::unique_ptr<CompiledLibrary> compiled_;
  std::map<std::string, size_t> index_;  // kernel name -> index in compiled_->kernels()
  std::mutex mutex_;                     // guards slots_, describe_, stale_
  std::map<std::pair<size_t, std::string>, std::unique_ptr<Slot>> slots_;  // by (kernel, values)
  std::string describe_;
  bool stale_ = true;
};

}  // namespace mps_shim
