// The generic tensor subset of AOTInductor's shim (shim.h) that generated MPS
// code and its runtime headers call.
#include <cstdio>
#include <stdexcept>

#include "abi/guard.h"
#include "abi/tensor_handles.h"
#include "runtime/dtype.h"
#include "util/error.h"

using namespace mps_shim;
using mps_shim::abi::guard;
using mps_shim::abi::publish;
using mps_shim::abi::tensor;

namespace {

std::vector<int64_t> dims(int64_t ndim, const int64_t* values, const char* what) {
  MPS_SHIM_CHECK(ndim >= 0 && ndim <= 64, "ndim must be from 0 to 64, got ", ndim);
  MPS_SHIM_CHECK(ndim == 0 || values != nullptr, "null ", what, " pointer for ", ndim, " dimensions");
  return std::vector<int64_t>(values, values + ndim);
}

std::vector<int64_t> strides_or_contiguous(int64_t ndim, const int64_t* strides, const std::vector<int64_t>& sizes) {
  return strides ? dims(ndim, strides, "strides") : contiguous_strides(sizes);
}

int64_t checked_dim(const Tensor& t, int64_t d) {
  MPS_SHIM_CHECK(d >= -t.dim() && d < t.dim(), "dimension ", d, " is out of range for a ", t.dim(), "-d tensor");
  return d < 0 ? d + t.dim() : d;
}

Tensor from_blob(void* data, int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr,
                 int64_t storage_offset, int32_t dtype, int32_t device_type, int32_t device_index) {
  const DType dt = checked_dtype(dtype);
  const DeviceType dev = checked_device(device_type);
  auto sizes = dims(ndim, sizes_ptr, "sizes");
  auto strides = strides_or_contiguous(ndim, strides_ptr, sizes);
  MPS_SHIM_CHECK(storage_offset >= 0, "negative storage offset ", storage_offset);
  const size_t span = span_bytes(sizes, strides, element_size(dtype));
  const size_t nbytes = span ? size_t(storage_offset) * element_size(dtype) + span : 0;
  MPS_SHIM_CHECK(data != nullptr || nbytes == 0, "null data for a tensor of ", nbytes, " bytes");
  auto storage = std::make_shared<Storage>(data, nbytes, dev, false);
  return Tensor(storage, std::move(sizes), std::move(strides), storage_offset, dt, device_index);
}

template <typename T>
AOTITorchError getter(const char* api, AtenTensorHandle h, T* out, T (*read)(Tensor&)) {
  return guard(api, [&] {
    abi::check_out(out, "result");
    *out = read(tensor(h));
  });
}

}  // namespace

extern "C" {

int32_t aoti_torch_device_type_cpu(void) { return int32_t(DeviceType::CPU); }
int32_t aoti_torch_device_type_cuda(void) { return int32_t(DeviceType::CUDA); }
int32_t aoti_torch_device_type_mps(void) { return int32_t(DeviceType::MPS); }

int32_t aoti_torch_dtype_bfloat16(void) { return int32_t(DType::BFloat16); }
int32_t aoti_torch_dtype_float16(void) { return int32_t(DType::Float16); }
int32_t aoti_torch_dtype_float32(void) { return int32_t(DType::Float32); }
int32_t aoti_torch_dtype_float64(void) { return int32_t(DType::Float64); }
int32_t aoti_torch_dtype_uint8(void) { return int32_t(DType::UInt8); }
int32_t aoti_torch_dtype_uint16(void) { return int32_t(DType::UInt16); }
int32_t aoti_torch_dtype_uint32(void) { return int32_t(DType::UInt32); }
int32_t aoti_torch_dtype_uint64(void) { return int32_t(DType::UInt64); }
int32_t aoti_torch_dtype_int8(void) { return int32_t(DType::Int8); }
int32_t aoti_torch_dtype_int16(void) { return int32_t(DType::Int16); }
int32_t aoti_torch_dtype_int32(void) { return int32_t(DType::Int32); }
int32_t aoti_torch_dtype_int64(void) { return int32_t(DType::Int64); }
int32_t aoti_torch_dtype_bool(void) { return int32_t(DType::Bool); }
size_t aoti_torch_dtype_element_size(int32_t dtype) { return element_size(dtype); }
int32_t aoti_torch_layout_strided(void) { return kLayoutStrided; }

namespace {
thread_local bool grad_mode = true;  // per thread, as in PyTorch
}
bool aoti_torch_grad_mode_is_enabled(void) { return grad_mode; }
void aoti_torch_grad_mode_set_enabled(bool enabled) { grad_mode = enabled; }

AOTITorchError aoti_torch_empty_strided(int64_t ndim, const int64_t* sizes_ptr, const int64_t* strides_ptr, int32_t dtype,
                                        int32_t device_type, int32_t device_index, AtenTensorHandle* ret_new_tensor) {
  return guard(__func__, [&] {
    abi::check_out(ret_new_tensor, "ret_new_tensor");
    const DType dt = checked_dtype(dtype);
    const DeviceType dev = checked_device(device_type);
    auto sizes = dims(ndim, sizes_ptr, "sizes");
    auto strides = strides_or_contiguous(ndim, strides_ptr, sizes);
    auto storage = allocate_storage(span_bytes(sizes, strides, element_size(dtype)), dev);
    *ret_new_tensor = publish(Tensor(storage, std::move(sizes), std::move(strides), 0, dt, device_index));
  });
}

AOTITorchError aoti_torch_create_tensor_from_blob(void* data, int64_t ndim, const int64_t* sizes_ptr,
                                                  const int64_t* strides_ptr, int64_t storage_offset, int32_t dtype,
                                                  int32_t device_type, int32_t device_index, AtenTensorHandle* ret) {
  return guard(__func__, [&] {
    abi::check_out(ret, "ret");
    *ret = publish(from_blob(data, ndim, sizes_ptr, strides_ptr, storage_offset, dtype, device_type, device_index));
  });
}

AOTITorchError aoti_torch_create_tensor_from_blob_v2(void* data, int64_t ndim, const int64_t* sizes_ptr,
                                                     const int64_t* strides_ptr, int64_t storage_offset, int32_t dtype,
                                                     int32_t device_type, int32_t device_index, AtenTensorHandle* ret,
                                                     int32_t layout, const uint8_t* opaque_metadata,
                                                     int64_t opaque_metadata_size) {
  return guard(__func__, [&] {
    abi::check_out(ret, "ret");
    MPS_SHIM_CHECK(layout == kLayoutStrided, "only the strided layout (0) is supported, got ", layout);
    *ret = publish(from_blob(data, ndim, sizes_ptr, strides_ptr, storage_offset, dtype, device_type, device_index));
  });
}

AOTITorchError aoti_torch_delete_tensor_object(AtenTensorHandle h) {
  return guard(__func__, [&] {
    Tensor* t = abi::tensors().get(h);
    abi::tensors().remove(t);
    delete t;
  });
}

AOTITorchError aoti_torch_new_tensor_handle(AtenTensorHandle orig_handle, AtenTensorHandle* new_handle) {
  return guard(__func__, [&] {
    abi::check_out(new_handle, "new_handle");
    *new_handle = publish(tensor(orig_handle));
  });
}

AOTITorchError aoti_torch__reinterpret_tensor(AtenTensorHandle self, int64_t ndim, const int64_t* sizes_ptr,
                                              const int64_t* strides_ptr, int64_t storage_offset,
                                              AtenTensorHandle* ret_new_tensor) {
  return guard(__func__, [&] {
    abi::check_out(ret_new_tensor, "ret_new_tensor");
    const Tensor& t = tensor(self);
    auto sizes = dims(ndim, sizes_ptr, "sizes");
    auto strides = strides_or_contiguous(ndim, strides_ptr, sizes);
    // As torch::inductor::_reinterpret_tensor: the offset is added to self's, not a replacement.
    const int64_t offset = t.storage_offset() + storage_offset;
    MPS_SHIM_CHECK_AS(ArgumentError, offset >= 0, "storage offset increment ", storage_offset,
                      " takes the view before its storage (self's offset is ", t.storage_offset(), ")");
    *ret_new_tensor = publish(t.view(std::move(sizes), std::move(strides), offset));
  });
}

AOTITorchError aoti_torch_as_strided(AtenTensorHandle self, const int64_t* sizes_ptr, const int64_t* strides_ptr,
                                     AtenTensorHandle* ret) {
  return guard(__func__, [&] {
    abi::check_out(ret, "ret");
    const Tensor& t = tensor(self);
    auto sizes = dims(t.dim(), sizes_ptr, "sizes");
    auto strides = dims(t.dim(), strides_ptr, "strides");
    *ret = publish(t.view(std::move(sizes), std::move(strides), t.storage_offset()));
  });
}

AOTITorchError aoti_torch_clone(AtenTensorHandle self, AtenTensorHandle* ret) {
  return guard(__func__, [&] {
    abi::check_out(ret, "ret");
    const Tensor& t = tensor(self);
    auto strides = contiguous_strides(t.sizes());
    auto storage = allocate_storage(span_bytes(t.sizes(), strides, t.element_size()), t.device());
    Tensor out(storage, t.sizes(), strides, 0, t.dtype(), t.device_index());
    copy_into(out, t);
    *ret = publish(std::move(out));
  });
}

AOTITorchError aoti_torch_clone_preserve_strides(AtenTensorHandle self, AtenTensorHandle* ret) {
  return guard(__func__, [&] {
    abi::check_out(ret, "ret");
    const Tensor& t = tensor(self);
    auto storage = allocate_storage(span_bytes(t.sizes(), t.strides(), t.element_size()), t.device());
    Tensor out(storage, t.sizes(), t.strides(), 0, t.dtype(), t.device_index());
    copy_into(out, t);
    *ret = publish(std::move(out));
  });
}

AOTITorchError aoti_torch_copy_(AtenTensorHandle self, AtenTensorHandle src, int32_t non_blocking) {
  return guard(__func__, [&] { copy_into(tensor(self), tensor(src)); });
}

AOTITorchError aoti_torch_get_data_ptr(AtenTensorHandle h, void** ret_data_ptr) {
  return getter<void*>(__func__, h, ret_data_ptr, [](Tensor& t) -> void* { return t.numel() ? t.data() : nullptr; });
}
AOTITorchError aoti_torch_get_sizes(AtenTensorHandle h, int64_t** ret_sizes) {
  return getter<int64_t*>(__func__, h, ret_sizes, [](Tensor& t) { return t.sizes_data(); });
}
AOTITorchError aoti_torch_get_strides(AtenTensorHandle h, int64_t** ret_strides) {
  return getter<int64_t*>(__func__, h, ret_strides, [](Tensor& t) { return t.strides_data(); });
}
AOTITorchError aoti_torch_get_dim(AtenTensorHandle h, int64_t* ret_dim) {
  return getter<int64_t>(__func__, h, ret_dim, [](Tensor& t) { return t.dim(); });
}
AOTITorchError aoti_torch_get_numel(AtenTensorHandle h, int64_t* ret_numel) {
  return getter<int64_t>(__func__, h, ret_numel, [](Tensor& t) { return t.numel(); });
}
AOTITorchError aoti_torch_get_storage_offset(AtenTensorHandle h, int64_t* ret) {
  return getter<int64_t>(__func__, h, ret, [](Tensor& t) { return t.storage_offset(); });
}
AOTITorchError aoti_torch_get_storage_size(AtenTensorHandle h, int64_t* ret_size) {
  return getter<int64_t>(__func__, h, ret_size, [](Tensor& t) { return int64_t(t.storage()->nbytes); });
}
AOTITorchError aoti_torch_get_dtype(AtenTensorHandle h, int32_t* ret_dtype) {
  return getter<int32_t>(__func__, h, ret_dtype, [](Tensor& t) { return int32_t(t.dtype()); });
}
AOTITorchError aoti_torch_get_device_type(AtenTensorHandle h, int32_t* ret_device_type) {
  return getter<int32_t>(__func__, h, ret_device_type, [](Tensor& t) { return int32_t(t.device()); });
}
AOTITorchError aoti_torch_get_device_index(AtenTensorHandle h, int32_t* ret_device_index) {
  return getter<int32_t>(__func__, h, ret_device_index, [](Tensor& t) { return t.device_index(); });
}

AOTITorchError aoti_torch_get_size(AtenTensorHandle h, int64_t d, int64_t* ret_size) {
  return guard(__func__, [&] {
    abi::check_out(ret_size, "ret_size");
    const Tensor& t = tensor(h);
    *ret_size = t.sizes()[size_t(checked_dim(t, d))];
  });
}

AOTITorchError aoti_torch_get_stride(AtenTensorHandle h, int64_t d, int64_t* ret_stride) {
  return guard(__func__, [&] {
    abi::check_out(ret_stride, "ret_stride");
    const Tensor& t = tensor(h);
    *ret_stride = t.strides()[size_t(checked_dim(t, d))];
  });
}

void aoti_torch_warn(const char* func, const char* file, uint32_t line, const char* msg) {
  std::fprintf(stderr, "[mps_shim] warning: %s (%s at %s:%u)\n", msg ? msg : "", func ? func : "?", file ? file : "?",
               unsigned(line));
}

void aoti_torch_check(bool cond, const char* func, const char* file, uint32_t line, const char* msg) {
  if (cond) return;
  // Upstream throws c10::Error, which AOTInductor's generated wrappers catch as
  // std::exception and turn into an error code; throw the same way (Error is a
  // std::runtime_error; inside a command block it fails the block as a runtime error).
  throw Error(concat(msg ? msg : "check failed", " (", func ? func : "?", " at ", file ? file : "?", ":",
                                  line, ")"));
}

}  // extern "C"
