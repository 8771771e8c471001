// Host code on tensors whose memory the host may not address. The ATen
// fallback ops' CPU compute and element-wise copies read and write through
// plain pointers; on a backend whose device memory is its own (CUDA), each
// device tensor they touch gets a host mirror of the bytes its storage's views
// span, copied in before and, for outputs, back after. Where device memory is
// the host's, tensors are used as they are and nothing is copied.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <vector>

#include "runtime/tensor.h"

namespace mps_shim {

// True when `t` lives in device memory that host code cannot dereference.
bool needs_staging(const Tensor& t);

class HostStaging {
 public:
  // Write: written by the host code and copied back (a view need not cover
  // its span, so the mirror starts as a copy of the device bytes).
  enum Access { Read, Write };
  struct Use {
    const Tensor* tensor;  // null: an absent optional tensor
    Access access;
  };
  // Views of one storage share one mirror, so aliasing between them is as on
  // the device.
  explicit HostStaging(const std::vector<Use>& uses);
  HostStaging(std::initializer_list<Use> uses) : HostStaging(std::vector<Use>(uses)) {}

  // The host tensor standing for uses[i] (the tensor itself where no staging is needed).
  const Tensor& operator[](size_t i) const { return *host_[i]; }
  // uses[i] as a pointer, null for an absent one.
  const Tensor* get(size_t i) const { return host_[i] ? &*host_[i] : nullptr; }
  // Copies the written mirrors back to device memory. Not run when the host
  // code throws: the device tensors then keep their old contents.
  void write_back();

 private:
  struct Mirror {
    Storage* device;
    size_t lo, hi;  // byte range of the device storage mirrored
    std::shared_ptr<Storage> host;
    bool written = false;
  };
  std::vector<Mirror> mirrors_;
  std::vector<std::unique_ptr<Tensor>> host_;
};

}  // namespace mps_shim
