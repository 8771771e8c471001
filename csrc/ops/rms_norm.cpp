// _fused_rms_norm: torch's MPS op (aten/src/ATen/native/mps/operations/RMSNorm.mm):
// output in the input's dtype, contiguous; rstd float32 shaped to broadcast
// against the input ([*batch, 1, ..., 1]); eps defaults to float32's epsilon.
// MPS requires a weight; a null weight here means none (the composite's
// semantics) instead of an error.
#include <limits>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

std::pair<Tensor, Tensor> fused_rms_norm(const Tensor& input, const std::vector<int64_t>& normalized_shape,
                                         const std::optional<Tensor>& weight, std::optional<double> eps) {
  const char* op = "_fused_rms_norm";
  check_device(op, input, "input");
  const DType d = input.dtype();
  MPS_SHIM_OP_CHECK(d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16, op,
                    "input must be float32, float16 or bfloat16, got ", dtype_name(int32_t(d)));
  const int64_t nd = int64_t(normalized_shape.size());
  MPS_SHIM_OP_CHECK(nd >= 1, op, "expected normalized_shape to be at least 1-dimensional, i.e., containing at least "
                    "one element, but got normalized_shape = ", shape_str(normalized_shape));
  if (weight) {
    check_device(op, *weight, "weight");
    MPS_SHIM_OP_CHECK(weight->sizes() == normalized_shape, op,
                      "expected weight to be of same shape as normalized_shape, but got weight of shape ",
                      shape_str(weight->sizes()), " and normalized_shape = ", shape_str(normalized_shape));
    MPS_SHIM_OP_CHECK(weight->dtype() == d, op, "expected weight to have dtype ", dtype_name(int32_t(d)), " but got ",
                      dtype_name(int32_t(weight->dtype())));
  }
  bool matches = input.dim() >= nd;
  for (int64_t i = 0; matches && i < nd; ++i)
    matches = input.sizes()[size_t(input.dim() - nd + i)] == normalized_shape[size_t(i)];
  MPS_SHIM_OP_CHECK(matches, op, "given normalized_shape=", shape_str(normalized_shape), ", expected input with shape [*",
                    [&] {
                      std::string s;
                      for (int64_t v : normalized_shape) s += concat(", ", v);
                      return s;
                    }(),
                    "], but got input of size ", shape_str(input.sizes()));

  const int64_t axis = input.dim() - nd;
  int64_t M = 1, N = 1;
  for (int64_t i = 0; i < input.dim(); ++i) (i < axis ? M : N) *= input.sizes()[size_t(i)];
  std::vector<int64_t> stat_shape(input.sizes().begin(), input.sizes().begin() + axis);
  stat_shape.resize(size_t(input.dim()), 1);

  Tensor out = empty_tensor(input.sizes(), d);
  Tensor rstd = empty_tensor(stat_shape, DType::Float32);
  if (M == 0) return {out, rstd};
  if (N == 0) {
    Tensor nan = empty_tensor({}, DType::Float32, DeviceType::CPU);
    *reinterpret_cast<float*>(nan.data()) = std::numeric_limits<float>::quiet_NaN();
    copy_into(rstd, nan);  // rstd may be device memory
    return {out, rstd};
  }
  Tensor x = input;
  if (!x.is_contiguous()) {
    x = empty_tensor(input.sizes(), d, DeviceType::CPU);
    copy_into(x, input);
  }
  const Tensor x2 = x.view({M, N}, {N, 1}, x.storage_offset());
  std::optional<Tensor> w;
  if (weight) {
    Tensor wc = *weight;
    if (!wc.is_contiguous()) {
      wc = empty_tensor(weight->sizes(), d, DeviceType::CPU);
      copy_into(wc, *weight);
    }
    w = wc.view({N}, {1}, wc.storage_offset());
  }
  op_backend().rms_norm(x2, w ? &*w : nullptr, eps ? *eps : double(std::numeric_limits<float>::epsilon()),
                        out.view({M, N}, {N, 1}, 0), rstd.view({M}, {1}, 0));
  return {out, rstd};
}

}  // namespace mps_shim::ops
