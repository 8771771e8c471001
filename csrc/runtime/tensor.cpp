#include "runtime/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "runtime/allocator.h"
#include "runtime/backend.h"
#include "runtime/host_staging.h"
#include "util/error.h"

namespace mps_shim {

Storage::~Storage() {
  if (!owned || data == nullptr) return;
  if (device == DeviceType::MPS) {
    try {
      device_free(data);
    } catch (...) {
      // A destructor must not throw; the registry entry is already gone.
    }
  } else {
    std::free(data);
  }
}

std::shared_ptr<Storage> allocate_storage(size_t nbytes, DeviceType device) {
  if (device == DeviceType::MPS) return std::make_shared<Storage>(device_malloc(nbytes), nbytes, device, true);
  MPS_SHIM_CHECK_AS(OutOfMemoryError, nbytes <= max_allocation_size(), "cannot allocate ", nbytes, " bytes of host memory");
  void* data = nbytes ? std::aligned_alloc(64, (nbytes + 63) / 64 * 64) : nullptr;
  MPS_SHIM_CHECK_AS(OutOfMemoryError, nbytes == 0 || data != nullptr, "out of host memory allocating ", nbytes, " bytes");
  return std::make_shared<Storage>(data, nbytes, device, true);
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides(sizes.size());
  int64_t step = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = step;
    step *= std::max<int64_t>(sizes[i], 1);
  }
  return strides;
}

Tensor empty_tensor(const std::vector<int64_t>& sizes, DType dtype, DeviceType device) {
  std::vector<int64_t> strides = contiguous_strides(sizes);
  auto storage = allocate_storage(span_bytes(sizes, strides, element_size(int32_t(dtype))), device);
  return Tensor(storage, sizes, std::move(strides), 0, dtype, 0);
}

size_t span_bytes(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, size_t elsize) {
  MPS_SHIM_CHECK(sizes.size() == strides.size(), "sizes and strides differ in length");
  int64_t last = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    MPS_SHIM_CHECK(sizes[i] >= 0, "negative size ", sizes[i], " in dimension ", i);
    MPS_SHIM_CHECK(strides[i] >= 0, "negative stride ", strides[i], " in dimension ", i, " is not supported");
    if (sizes[i] == 0) return 0;
    MPS_SHIM_CHECK(strides[i] == 0 || sizes[i] - 1 <= (std::numeric_limits<int64_t>::max() / 2 - last) / strides[i],
                   "tensor extent overflows");
    last += (sizes[i] - 1) * strides[i];
  }
  MPS_SHIM_CHECK(uint64_t(last) < std::numeric_limits<uint64_t>::max() / 16 / elsize, "tensor extent overflows");
  return size_t(last + 1) * elsize;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, std::vector<int64_t> sizes, std::vector<int64_t> strides,
               int64_t storage_offset, DType dtype, int32_t device_index)
    : storage_(std::move(storage)), sizes_(std::move(sizes)), strides_(std::move(strides)),
      storage_offset_(storage_offset), dtype_(dtype), device_index_(device_index) {
  MPS_SHIM_CHECK(storage_offset_ >= 0, "negative storage offset ", storage_offset_);
  const size_t span = span_bytes(sizes_, strides_, element_size());
  if (span == 0) return;
  const size_t end = size_t(storage_offset_) * element_size() + span;
  MPS_SHIM_CHECK(end <= storage_->nbytes, "view needs ", end, " bytes but its storage holds ", storage_->nbytes);
}

size_t Tensor::element_size() const { return mps_shim::element_size(int32_t(dtype_)); }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : sizes_) n *= s;
  return n;
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;
  int64_t step = 1;
  for (size_t i = sizes_.size(); i-- > 0;) {
    if (sizes_[i] == 1) continue;
    if (strides_[i] != step) return false;
    step *= sizes_[i];
  }
  return true;
}

char* Tensor::data() const {
  return static_cast<char*>(storage_->data) + storage_offset_ * int64_t(element_size());
}

Tensor Tensor::view(std::vector<int64_t> sizes, std::vector<int64_t> strides, int64_t storage_offset) const {
  return Tensor(storage_, std::move(sizes), std::move(strides), storage_offset, dtype_, device_index_);
}

void Tensor::resize_(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides = contiguous_strides(sizes);
  const size_t needed = size_t(storage_offset_) * element_size() + span_bytes(sizes, strides, element_size());
  if (needed > storage_->nbytes) {
    MPS_SHIM_CHECK(storage_->owned, "cannot resize a tensor over memory it does not own (needs ", needed,
                   " bytes, has ", storage_->nbytes, ")");
    auto grown = allocate_storage(needed, storage_->device);
    if (storage_->nbytes) {
      if (storage_->device == DeviceType::MPS && !backend().host_addressable())
        backend().copy(grown->data, storage_->data, storage_->nbytes, CopyKind::DeviceToDevice);
      else
        std::memcpy(grown->data, storage_->data, storage_->nbytes);
    }
    std::swap(storage_->data, grown->data);  // `grown` now frees the old memory
    std::swap(storage_->nbytes, grown->nbytes);
  }
  // Assign in place: get_sizes/get_strides pointers stay valid while the rank is unchanged.
  sizes_.assign(sizes.begin(), sizes.end());
  strides_.assign(strides.begin(), strides.end());
}

namespace {

bool is_integral(DType t) { return t != DType::Float16 && t != DType::Float32 && t != DType::Float64 && t != DType::BFloat16; }

template <typename T>
T load_as(const char* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }

double load_float(DType t, const char* p) {  // t is a floating type
  switch (t) {
    case DType::Float16: return half_bits_to_float(load_as<uint16_t>(p));
    case DType::BFloat16: return bfloat_bits_to_float(load_as<uint16_t>(p));
    case DType::Float32: return load_as<float>(p);
    default: return load_as<double>(p);
  }
}

// Integers travel as their 64-bit two's-complement pattern, so int64/uint64 stay exact.
uint64_t load_int(DType t, const char* p) {
  switch (t) {
    case DType::UInt8: return load_as<uint8_t>(p);
    case DType::Int8: return uint64_t(int64_t(load_as<int8_t>(p)));
    case DType::Int16: return uint64_t(int64_t(load_as<int16_t>(p)));
    case DType::Int32: return uint64_t(int64_t(load_as<int32_t>(p)));
    case DType::Int64: return uint64_t(load_as<int64_t>(p));
    case DType::Bool: return load_as<uint8_t>(p) != 0;
    case DType::UInt16: return load_as<uint16_t>(p);
    case DType::UInt32: return load_as<uint32_t>(p);
    case DType::UInt64: return load_as<uint64_t>(p);
    default: return 0;
  }
}

template <typename T>
void store_as(char* p, T v) { std::memcpy(p, &v, sizeof(T)); }

// Float to integer: NaN gives 0 and out-of-range values saturate, instead of C's undefined behaviour.
template <typename I>
I saturate(double v) {
  if (std::isnan(v)) return 0;
  if (v <= double(std::numeric_limits<I>::lowest())) return std::numeric_limits<I>::lowest();
  if (v >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return I(v);
}

void store_float(DType t, char* p, double v) {
  switch (t) {
    case DType::Float16: return store_as(p, float_to_half_bits(float(v)));
    case DType::BFloat16: return store_as(p, float_to_bfloat_bits(float(v)));
    case DType::Float32: return store_as(p, float(v));
    case DType::Float64: return store_as(p, v);
    case DType::Bool: return store_as<uint8_t>(p, v != 0);
    case DType::UInt8: return store_as(p, saturate<uint8_t>(v));
    case DType::Int8: return store_as(p, saturate<int8_t>(v));
    case DType::Int16: return store_as(p, saturate<int16_t>(v));
    case DType::Int32: return store_as(p, saturate<int32_t>(v));
    case DType::Int64: return store_as(p, saturate<int64_t>(v));
    case DType::UInt16: return store_as(p, saturate<uint16_t>(v));
    case DType::UInt32: return store_as(p, saturate<uint32_t>(v));
    case DType::UInt64: return store_as(p, saturate<uint64_t>(v));
    case DType::ComplexFloat: case DType::ComplexDouble: break;  // never reach here (checked before)
  }
}

void store_int(DType t, char* p, uint64_t v) {
  switch (t) {
    case DType::Bool: return store_as<uint8_t>(p, v != 0);
    case DType::UInt8: case DType::Int8: return store_as(p, uint8_t(v));
    case DType::Int16: case DType::UInt16: return store_as(p, uint16_t(v));
    case DType::Int32: case DType::UInt32: return store_as(p, uint32_t(v));
    default: return store_as(p, v);
  }
}

bool is_signed_int(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::Int32 || t == DType::Int64;
}

int significand_bits(DType t) {
  switch (t) {
    case DType::Float16: return 11;
    case DType::BFloat16: return 8;
    case DType::Float32: return 24;
    default: return 53;
  }
}

// An integer rounded once, to nearest even, to `bits` significant bits: the
// result is exact as a double and in the target type, so converting it there
// cannot round a second time (int64 -> float32 through double would).
double round_integer(uint64_t pattern, bool is_signed, int bits) {
  const bool negative = is_signed && int64_t(pattern) < 0;
  uint64_t mag = negative ? uint64_t(0) - pattern : pattern;
  const int width = 64 - __builtin_clzll(mag | 1);
  if (width > bits) {
    const int shift = width - bits;
    const uint64_t rest = mag & ((uint64_t(1) << shift) - 1), halfway = uint64_t(1) << (shift - 1);
    uint64_t q = mag >> shift;
    if (rest > halfway || (rest == halfway && (q & 1))) ++q;
    const double v = std::ldexp(double(q), shift);
    return negative ? -v : v;
  }
  return negative ? -double(mag) : double(mag);
}

// Walks dst's index space in row-major order, calling f(dst_offset, src_offset) in bytes.
template <typename F>
void for_each_element(const Tensor& dst, const std::vector<int64_t>& src_strides, size_t src_elsize, F f) {
  const auto& sizes = dst.sizes();
  const size_t nd = sizes.size();
  if (dst.numel() == 0) return;
  std::vector<int64_t> index(nd, 0);
  const int64_t dst_el = int64_t(dst.element_size()), src_el = int64_t(src_elsize);
  int64_t doff = 0, soff = 0;
  for (;;) {
    f(doff, soff);
    size_t d = nd;
    for (; d-- > 0;) {
      if (++index[d] < sizes[d]) {
        doff += dst.strides()[d] * dst_el;
        soff += src_strides[d] * src_el;
        break;
      }
      doff -= (sizes[d] - 1) * dst.strides()[d] * dst_el;
      soff -= (sizes[d] - 1) * src_strides[d] * src_el;
      index[d] = 0;
    }
    if (d == size_t(-1)) return;
  }
}

}  // namespace

bool tensors_overlap(const Tensor& a, const Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0) return false;  // by address: two borrowed blobs may share memory
  const char* a0 = a.data();
  const char* b0 = b.data();
  const char* a1 = a0 + span_bytes(a.sizes(), a.strides(), a.element_size());
  const char* b1 = b0 + span_bytes(b.sizes(), b.strides(), b.element_size());
  return a0 < b1 && b0 < a1;
}

namespace {

void copy_on_host(const Tensor& dst, const Tensor& src) {
  MPS_SHIM_CHECK(src.dim() <= dst.dim(), "copy_: source has ", src.dim(), " dimensions, destination ", dst.dim());
  std::vector<int64_t> src_strides(dst.dim(), 0);  // broadcast: missing and size-1 dimensions repeat
  for (int64_t i = 0; i < src.dim(); ++i) {
    const int64_t d = dst.dim() - src.dim() + i;
    const int64_t s = src.sizes()[i];
    MPS_SHIM_CHECK(s == dst.sizes()[d] || s == 1, "copy_: source size ", s, " cannot broadcast to ",
                   dst.sizes()[d], " in dimension ", d);
    src_strides[d] = s == 1 ? 0 : src.strides()[i];
  }
  if (tensors_overlap(dst, src)) {  // read everything before writing anything
    auto tmp_storage = allocate_storage(span_bytes(src.sizes(), contiguous_strides(src.sizes()), src.element_size()),
                                        DeviceType::CPU);
    Tensor tmp(tmp_storage, src.sizes(), contiguous_strides(src.sizes()), 0, src.dtype(), 0);
    copy_on_host(tmp, src);
    return copy_on_host(dst, tmp);
  }
  char* out = dst.data();
  const char* in = src.data();
  const DType dt = dst.dtype(), st = src.dtype();
  MPS_SHIM_CHECK(dt == st || (!is_complex(dt) && !is_complex(st)), "copy_: complex tensors copy only to their own dtype (",
                 dtype_name(int32_t(st)), " to ", dtype_name(int32_t(dt)), ")");
  if (dt == st) {
    const size_t el = dst.element_size();
    if (dst.is_contiguous() && src.is_contiguous() && src.numel() == dst.numel()) {
      std::memcpy(out, in, size_t(dst.numel()) * el);
      return;
    }
    for_each_element(dst, src_strides, el, [&](int64_t d, int64_t s) { std::memcpy(out + d, in + s, el); });
  } else if (is_integral(dt) && is_integral(st)) {
    for_each_element(dst, src_strides, src.element_size(),
                     [&](int64_t d, int64_t s) { store_int(dt, out + d, load_int(st, in + s)); });
  } else if (is_integral(st)) {
    const bool is_signed = is_signed_int(st);
    const int bits = significand_bits(dt);
    for_each_element(dst, src_strides, src.element_size(), [&](int64_t d, int64_t s) {
      store_float(dt, out + d, round_integer(load_int(st, in + s), is_signed, bits));
    });
  } else {
    for_each_element(dst, src_strides, src.element_size(),
                     [&](int64_t d, int64_t s) { store_float(dt, out + d, load_float(st, in + s)); });
  }
}

}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  if (!needs_staging(dst) && !needs_staging(src)) return copy_on_host(dst, src);
  if (dst.dtype() == src.dtype() && dst.sizes() == src.sizes() && dst.is_contiguous() && src.is_contiguous() &&
      needs_staging(dst) && needs_staging(src) && !tensors_overlap(dst, src)) {
    backend().copy(dst.data(), src.data(), size_t(dst.numel()) * dst.element_size(), CopyKind::DeviceToDevice);
    return;
  }
  HostStaging host({{&dst, HostStaging::Write}, {&src, HostStaging::Read}});
  copy_on_host(host[0], host[1]);
  host.write_back();
}

}  // namespace mps_shim
