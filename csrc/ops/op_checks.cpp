#include "ops/op_checks.h"

#include <algorithm>
#include <cstdio>

#include "runtime/backend.h"
#include "runtime/dtype.h"

namespace mps_shim::ops {

std::string shape_str(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += concat(i ? ", " : "", sizes[i]);
  return s + "]";
}

bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float16 || t == DType::BFloat16 || t == DType::Float64;
}

bool is_integral(DType t, bool include_bool) {
  switch (t) {
    case DType::UInt8: case DType::Int8: case DType::Int16: case DType::Int32: case DType::Int64:
    case DType::UInt16: case DType::UInt32: case DType::UInt64:
      return true;
    case DType::Bool:
      return include_bool;
    default:
      return false;
  }
}

int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim) {
  const int64_t n = ndim > 0 ? ndim : 1;  // a scalar behaves as one dimension
  MPS_SHIM_OP_CHECK(dim >= -n && dim < n, op, "dimension out of range (expected to be in range of [", -n, ", ", n - 1,
                    "], but got ", dim, ")");
  return dim < 0 ? dim + n : dim;
}

namespace {

// Position in torch's lattice: bool < integers < floating; within a kind by width.
int kind(DType t) { return t == DType::Bool ? 0 : is_integral(t, false) ? 1 : 2; }

}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (kind(a) != kind(b)) return kind(a) > kind(b) ? a : b;
  if (kind(a) == 2) {
    if (a == DType::Float64 || b == DType::Float64) return DType::Float64;
    if (a == DType::Float32 || b == DType::Float32) return DType::Float32;
    return DType::Float32;  // float16 with bfloat16
  }
  // Integers: torch's table. Unsigned 16/32/64 only mix with their own kind in torch; take the wider type.
  auto rank = [](DType t) {
    switch (t) {
      case DType::UInt8: return 1; case DType::Int8: return 1; case DType::Int16: return 2;
      case DType::UInt16: return 2; case DType::Int32: return 3; case DType::UInt32: return 3;
      default: return 4;
    }
  };
  if ((a == DType::UInt8 && b == DType::Int8) || (a == DType::Int8 && b == DType::UInt8)) return DType::Int16;
  return rank(a) >= rank(b) ? (rank(a) == rank(b) ? DType::Int64 : a) : b;
}

void check_dim(const char* op, const Tensor& t, const char* name, int64_t dim) {
  MPS_SHIM_OP_CHECK(t.dim() == dim, op, name, " must be a ", dim, "-D tensor, got shape ", shape_str(t.sizes()));
}

void check_device(const char* op, const Tensor& t, const char* name) {
  MPS_SHIM_OP_CHECK(t.device() == DeviceType::MPS || backend().host_addressable(), op, name,
                    " must be an mps tensor, got a cpu tensor");
}

void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  MPS_SHIM_OP_CHECK(a.dtype() == b.dtype(), op, a_name, " and ", b_name, " must have one dtype, got ",
                    dtype_name(int32_t(a.dtype())), " and ", dtype_name(int32_t(b.dtype())));
}

void check_floating(const char* op, const Tensor& t, const char* name) {
  MPS_SHIM_OP_CHECK(is_floating(t.dtype()), op, name, " must be float32, float16 or bfloat16, got ",
                    dtype_name(int32_t(t.dtype())));
}

void check_product_dtype(const char* op, const Tensor& t, const char* name) {
  const DType d = t.dtype();
  MPS_SHIM_OP_CHECK(is_floating(d) || d == DType::Int8 || d == DType::UInt8 || d == DType::Int16 ||
                        d == DType::Int32 || d == DType::Int64,
                    op, name, " has dtype ", dtype_name(int32_t(d)),
                    "; products take float32, float16, bfloat16 or int8/uint8/int16/int32/int64");
}

Tensor empty_preserving(const Tensor& t, DType dtype) {
  const size_t nd = t.sizes().size();
  std::vector<size_t> order(nd);  // innermost first
  for (size_t i = 0; i < nd; ++i) order[i] = nd - 1 - i;
  // Stable: among equal strides (size-1 dimensions) the later dimension stays inner, as for contiguous.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool a1 = t.sizes()[a] == 1, b1 = t.sizes()[b] == 1;
    if (a1 || b1) return false;
    return t.strides()[a] < t.strides()[b];
  });
  std::vector<int64_t> strides(nd);
  int64_t s = 1;
  for (size_t d : order) {
    strides[d] = s;
    s *= std::max<int64_t>(t.sizes()[d], 1);
  }
  Tensor flat = empty_tensor({s}, dtype, t.device());
  return flat.view(t.sizes(), strides, 0);
}

void resize_out(const char* op, Tensor& out, const char* name, const std::vector<int64_t>& sizes, DType dtype) {
  check_device(op, out, name);
  MPS_SHIM_OP_CHECK(out.dtype() == dtype, op, "expected ", name, " to have dtype ", dtype_name(int32_t(dtype)),
                    ", got ", dtype_name(int32_t(out.dtype())));
  if (out.sizes() == sizes) return;
  if (out.numel() != 0)
    std::fprintf(stderr,
                 "mps_shim warning: %s: an output with one or more elements was resized since it had shape %s, "
                 "which does not match the required output shape %s. This behavior is deprecated in PyTorch.\n",
                 op, shape_str(out.sizes()).c_str(), shape_str(sizes).c_str());
  try {
    out.resize_(sizes);
  } catch (const Error& e) {
    op_fail(op, "cannot resize ", name, " from ", shape_str(out.sizes()), " to ", shape_str(sizes), ": ", e.what());
  }
}

void check_broadcastable(const char* op, const Tensor& t, const char* name, const std::vector<int64_t>& sizes) {
  bool ok = t.dim() <= int64_t(sizes.size());
  for (int64_t i = 0; ok && i < t.dim(); ++i) {
    const int64_t s = t.sizes()[size_t(i)], target = sizes[sizes.size() - size_t(t.dim()) + size_t(i)];
    ok = s == target || s == 1;
  }
  MPS_SHIM_OP_CHECK(ok, op, name, " of shape ", shape_str(t.sizes()), " cannot broadcast to ", shape_str(sizes));
}

}  // namespace mps_shim::ops
