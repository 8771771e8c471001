// Argument checks and output handling shared by the ATen fallback ops. Every
// failure is an OpError whose message starts with the op's name and says
// which argument was wrong and how.
#pragma once

#include <string>
#include <vector>

#include "runtime/tensor.h"
#include "util/error.h"

namespace mps_shim::ops {

template <typename... Parts>
[[noreturn]] void op_fail(const char* op, const Parts&... parts) {
  throw OpError(concat(op, ": ", parts...));
}

#define MPS_SHIM_OP_CHECK(cond, op, ...) \
  do {                                   \
    if (!(cond)) ::mps_shim::ops::op_fail(op, __VA_ARGS__); \
  } while (0)

std::string shape_str(const std::vector<int64_t>& sizes);
bool is_floating(DType t);
// Integer types; bool counts only when include_bool.
bool is_integral(DType t, bool include_bool);

// A dimension index in [-ndim, ndim) made non-negative (a 0-d tensor takes -1 and 0), as ATen's maybe_wrap_dim.
int64_t wrap_dim(const char* op, int64_t dim, int64_t ndim);
// torch's type promotion for two tensor dtypes (result_type of tensors of equal rank class).
DType promote_types(DType a, DType b);

void check_dim(const char* op, const Tensor& t, const char* name, int64_t dim);
// Tensors the backend can read: mps tensors, or any tensor when device memory is host memory.
void check_device(const char* op, const Tensor& t, const char* name);
void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name);
void check_floating(const char* op, const Tensor& t, const char* name);
// Matrix products: floating types and the integer types torch's MPS backend multiplies.
void check_product_dtype(const char* op, const Tensor& t, const char* name);

// A new tensor shaped like t whose dense strides keep t's dimension order (ATen's
// MemoryFormat::Preserve: t's own strides when t is non-overlapping and dense).
Tensor empty_preserving(const Tensor& t, DType dtype);

// torch's rules for an `out=` argument: its dtype must be the result's; a
// shape that differs is resized (with torch's deprecation warning when out
// held elements).
void resize_out(const char* op, Tensor& out, const char* name, const std::vector<int64_t>& sizes, DType dtype);
// `t`'s shape broadcast to `sizes` (trailing alignment), or an error naming `name`.
void check_broadcastable(const char* op, const Tensor& t, const char* name, const std::vector<int64_t>& sizes);

}  // namespace mps_shim::ops
