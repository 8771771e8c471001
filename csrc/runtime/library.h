// Shader libraries and their kernel functions: argument binding and the
// dispatch rules of Metal's dispatchThreads as PyTorch uses them.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/backend.h"
#include "runtime/tensor.h"
#include "util/error.h"

namespace mps_shim {

class ShaderLibrary;

class KernelFunction {
 public:
  KernelFunction(ShaderLibrary& library, size_t index);
  const KernelInfo& info() const;

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
  struct Binding {
    enum Kind { Unbound, Buffer, Bytes } kind = Unbound;
    void* address = nullptr;
    std::shared_ptr<Storage> keep_alive;  // a tensor's storage outlives the dispatch
    // Bound bytes: kMaxBytes, aligned for any Metal type, allocated on first use.
    std::unique_ptr<unsigned char[], void (*)(void*)> bytes{nullptr, std::free};
  };
  const KernelParam& param_at(unsigned index, const char* what) const;
  void check_encoding(const char* what, ErrorKind kind) const;
  std::string describe_bindings() const;
  std::string binding_label(unsigned index, const KernelParam& p) const;
  void launch(const uint32_t grid[3], const uint32_t group[3]);
  const uint32_t* place_threadgroup_memory();

  ShaderLibrary& library_;
  size_t index_;
  std::vector<const KernelParam*> by_binding_;  // the parameter bound at each buffer index
  std::vector<Binding> bindings_;
  std::vector<void*> args_;
  bool error_buffer_bound_ = false;  // since start_encoding
  std::vector<const KernelParam*> threadgroup_params_;  // by [[threadgroup(n)]] index
  std::vector<int64_t> threadgroup_lengths_;            // -1: not set since start_encoding
  std::vector<uint32_t> threadgroup_offsets_;
  // start_encoding's queue epoch: encoding state ends with the command block.
  uint64_t encoding_epoch_ = ~uint64_t(0);
};

class ShaderLibrary {
 public:
  explicit ShaderLibrary(std::unique_ptr<CompiledLibrary> compiled);
  KernelFunction& function(const std::string& name);  // throws, listing the kernels
  CompiledLibrary& compiled() { return *compiled_; }
  const std::string& describe_json() const { return describe_; }
  std::vector<KernelFunction*> functions();

 private:
  std::unique_ptr<CompiledLibrary> compiled_;
  std::map<std::string, std::unique_ptr<KernelFunction>> functions_;
  std::string describe_;
};

}  // namespace mps_shim
