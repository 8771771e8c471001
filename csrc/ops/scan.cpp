// cumsum, cumprod: ATen's result dtype (integers and bool accumulate as int64
// unless a dtype is given), dimension wrapping, then one backend scan.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

Tensor scan(const char* op, const Tensor& self, int64_t dim, const int32_t* dtype, ScanOp kind) {
  check_device(op, self, "self");
  const int64_t d = wrap_dim(op, dim, self.dim());
  DType result = self.dtype();
  if (dtype != nullptr) {
    try {
      result = checked_dtype(*dtype);
    } catch (const Error&) {
      op_fail(op, "unsupported dtype code ", *dtype);
    }
  } else if (is_integral(self.dtype(), true)) {
    result = DType::Int64;
  }
  Tensor out = empty_tensor(self.sizes(), result);
  if (out.numel() == 0) return out;
  if (self.dim() == 0) {
    copy_into(out, self);
    return out;
  }
  op_backend().scan(self, out, d, kind);
  return out;
}

}  // namespace

Tensor cumsum(const Tensor& self, int64_t dim, const int32_t* dtype) {
  return scan("cumsum", self, dim, dtype, ScanOp::Sum);
}

Tensor cumprod(const Tensor& self, int64_t dim, const int32_t* dtype) {
  return scan("cumprod", self, dim, dtype, ScanOp::Prod);
}

}  // namespace mps_shim::ops
