// Strided tensors over reference-counted storage: a view keeps its storage
// alive, so a kernel never writes into freed memory through a view.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/dtype.h"

namespace mps_shim {

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  DeviceType device = DeviceType::MPS;
  bool owned = false;  // false for create_tensor_from_blob: the caller owns the memory
  Storage(void* d, size_t n, DeviceType dev, bool own) : data(d), nbytes(n), device(dev), owned(own) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// Allocates storage for `device`: mps memory comes from the device allocator.
std::shared_ptr<Storage> allocate_storage(size_t nbytes, DeviceType device);

class Tensor {
 public:
  Tensor(std::shared_ptr<Storage> storage, std::vector<int64_t> sizes, std::vector<int64_t> strides,
         int64_t storage_offset, DType dtype, int32_t device_index);

  const std::shared_ptr<Storage>& storage() const { return storage_; }
  const std::vector<int64_t>& sizes() const { return sizes_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  // Stable pointers for get_sizes/get_strides: valid for the tensor's life.
  int64_t* sizes_data() { return sizes_.data(); }
  int64_t* strides_data() { return strides_.data(); }
  int64_t storage_offset() const { return storage_offset_; }
  DType dtype() const { return dtype_; }
  size_t element_size() const;
  DeviceType device() const { return storage_->device; }
  int32_t device_index() const { return device_index_; }
  int64_t dim() const { return int64_t(sizes_.size()); }
  int64_t numel() const;
  bool is_contiguous() const;
  // Address of element 0: storage base + storage_offset * element size.
  char* data() const;

  // torch's resize_: new sizes with contiguous strides. Storage too small for
  // them grows in place (views of it see the new memory); borrowed memory cannot grow.
  void resize_(const std::vector<int64_t>& sizes);

  // A view over the same storage; checks that it stays inside the storage.
  Tensor view(std::vector<int64_t> sizes, std::vector<int64_t> strides, int64_t storage_offset) const;

 private:
  std::shared_ptr<Storage> storage_;
  std::vector<int64_t> sizes_, strides_;
  int64_t storage_offset_;
  DType dtype_;
  int32_t device_index_;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes);
// A new contiguous tensor with uninitialised memory.
Tensor empty_tensor(const std::vector<int64_t>& sizes, DType dtype, DeviceType device = DeviceType::MPS);
// Bytes a layout spans from element 0, or 0 when it holds no element.
size_t span_bytes(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, size_t elsize);
// True when a and b share storage and their byte ranges intersect.
bool tensors_overlap(const Tensor& a, const Tensor& b);
// Element-wise copy with broadcasting of src over dst's shape and dtype conversion.
void copy_into(const Tensor& dst, const Tensor& src);

}  // namespace mps_shim
