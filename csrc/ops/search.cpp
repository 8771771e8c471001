// searchsorted and bucketize: ATen's argument checks, then one backend search.
#include <cstring>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

Tensor search(const char* op, const Tensor& sorted, const Tensor& self, bool out_int32, bool right,
              const std::optional<Tensor>& sorter) {
  check_device(op, sorted, "sorted_sequence");
  check_device(op, self, "self");
  MPS_SHIM_OP_CHECK(sorted.dim() > 0, op, "boundaries tensor should have positive dimension, but got 0 dimension");
  bool leading_match = sorted.dim() == 1 || sorted.dim() == self.dim();
  for (int64_t d = 0; leading_match && sorted.dim() > 1 && d + 1 < sorted.dim(); ++d)
    leading_match = sorted.sizes()[size_t(d)] == self.sizes()[size_t(d)];
  MPS_SHIM_OP_CHECK(leading_match, op,
                    "boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor and "
                    "input value tensor must match, but we got boundaries tensor ",
                    shape_str(sorted.sizes()), " and input value tensor ", shape_str(self.sizes()));
  MPS_SHIM_OP_CHECK(is_integral(sorted.dtype(), false) || is_floating(sorted.dtype()), op,
                    "boundaries must be an integer or floating tensor, got ", dtype_name(int32_t(sorted.dtype())));
  MPS_SHIM_OP_CHECK(is_integral(self.dtype(), false) || is_floating(self.dtype()), op,
                    "input must be an integer or floating tensor, got ", dtype_name(int32_t(self.dtype())));
  if (sorter) {
    check_device(op, *sorter, "sorter");
    MPS_SHIM_OP_CHECK(sorter->dtype() == DType::Int64, op, "sorter must be a tensor of long dtype, but got ",
                      dtype_name(int32_t(sorter->dtype())));
    MPS_SHIM_OP_CHECK(sorter->sizes() == sorted.sizes(), op,
                      "boundary and sorter must have the same size, but got boundary tensor ",
                      shape_str(sorted.sizes()), " and got sorter tensor ", shape_str(sorter->sizes()));
  }
  MPS_SHIM_OP_CHECK(!out_int32 || sorted.sizes().back() < (int64_t(1) << 31), op,
                    "the size of boundaries must be less than 2^31 - 1 with out_int32=True, got ",
                    sorted.sizes().back());
  Tensor out = empty_tensor(self.sizes(), out_int32 ? DType::Int32 : DType::Int64);
  if (out.numel() != 0) op_backend().searchsorted(sorted, self, out, right, sorter);
  return out;
}

}  // namespace

Tensor searchsorted(const Tensor& sorted_sequence, const Tensor& self, bool out_int32, bool right,
                    const char* const* side, const std::optional<Tensor>& sorter) {
  const char* op = "searchsorted";
  if (side != nullptr && *side != nullptr) {
    const bool is_right = std::strcmp(*side, "right") == 0;
    MPS_SHIM_OP_CHECK(is_right || std::strcmp(*side, "left") == 0, op, "side can only be 'left' or 'right' but got ",
                      *side);
    MPS_SHIM_OP_CHECK(!right || is_right, op,
                      "side and right can't be set to opposites, got side of left while right was True");
    right = is_right;
  }
  return search(op, sorted_sequence, self, out_int32, right, sorter);
}

Tensor bucketize(const Tensor& self, const Tensor& boundaries, bool out_int32, bool right) {
  MPS_SHIM_OP_CHECK(boundaries.dim() == 1, "bucketize", "boundaries tensor must be 1 dimension, but got dim(",
                    boundaries.dim(), ")");
  return search("bucketize", boundaries, self, out_int32, right, std::nullopt);
}

}  // namespace mps_shim::ops
