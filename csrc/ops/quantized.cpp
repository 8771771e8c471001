// _weight_int8pack_mm and _weight_int4pack_mm: weight-only quantized linear
// layers, with the shapes and packing of torch's MPS ops
// (aten/src/ATen/native/mps/operations/Quantized.mm, kernels/Quantized.metal).
//
// int8: self [M, K] float, mat2 [N, K] int8, scales [N]; out = (self @ mat2^T) * scales.
// int4: self [M, K] float; mat2 is what MPS's _convert_weight_to_int4pack
// returns: int32 of the nominal shape [N / 8, K / (16 * innerKTiles), 32,
// innerKTiles / 2] whose N * K / 2 bytes are row-major [N, K / 2], byte k / 2
// of row n holding k in its low nibble (even k) or high nibble (odd k). The
// same bytes given as uint8 [N, K / 2] are accepted too. qScaleAndZeros is
// [K / qGroupSize, N, 2] (scale, zero); a weight is (q - 8) * scale + zero.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

void check_activation(const char* op, const Tensor& a) {
  check_device(op, a, "self");
  const DType d = a.dtype();
  MPS_SHIM_OP_CHECK(d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16, op,
                    "expected self to be float32, float16 or bfloat16, got ", dtype_name(int32_t(d)));
  check_dim(op, a, "self", 2);
}

}  // namespace

Tensor weight_int8pack_mm(const Tensor& self, const Tensor& mat2, const Tensor& scales) {
  const char* op = "_weight_int8pack_mm";
  check_activation(op, self);
  check_device(op, mat2, "mat2");
  check_device(op, scales, "scales");
  check_dim(op, mat2, "mat2", 2);
  MPS_SHIM_OP_CHECK(mat2.dtype() == DType::Int8, op, "expected mat2 to be int8, got ",
                    dtype_name(int32_t(mat2.dtype())));
  const int64_t M = self.sizes()[0], K = self.sizes()[1], N = mat2.sizes()[0];
  MPS_SHIM_OP_CHECK(mat2.sizes()[1] == K, op, "expected mat2.size(1) (", mat2.sizes()[1], ") == self.size(1) (", K,
                    ")");
  MPS_SHIM_OP_CHECK(scales.dim() == 1 && scales.sizes()[0] == N, op, "expected scales to be 1-D with size ", N,
                    ", got shape ", shape_str(scales.sizes()));
  check_same_dtype(op, self, "self", scales, "scales");
  Tensor out = empty_tensor({M, N}, self.dtype());
  if (out.numel() > 0) op_backend().int8pack_mm(self, mat2, scales, out);
  return out;
}

Tensor weight_int4pack_mm(const Tensor& self, const Tensor& mat2, int64_t group_size, const Tensor& sz) {
  const char* op = "_weight_int4pack_mm";
  check_activation(op, self);
  check_device(op, mat2, "mat2");
  check_device(op, sz, "qScaleAndZeros");
  const int64_t M = self.sizes()[0], K = self.sizes()[1];
  int64_t N = 0;
  if (mat2.dtype() == DType::Int32) {
    MPS_SHIM_OP_CHECK(mat2.dim() == 4, op, "expected mat2 to be a 4-D int32 tensor (from _convert_weight_to_int4pack), got shape ",
                      shape_str(mat2.sizes()));
    N = mat2.sizes()[0] * 8;
  } else {
    MPS_SHIM_OP_CHECK(mat2.dtype() == DType::UInt8 && mat2.dim() == 2, op,
                      "expected mat2 to be int32 [N / 8, K / (16 * innerKTiles), 32, innerKTiles / 2] or uint8 "
                      "[N, K / 2], got ", dtype_name(int32_t(mat2.dtype())), " of shape ", shape_str(mat2.sizes()));
    N = mat2.sizes()[0];
  }
  MPS_SHIM_OP_CHECK(mat2.is_contiguous(), op, "expected mat2 to be contiguous");
  MPS_SHIM_OP_CHECK(K % 2 == 0 && int64_t(mat2.numel()) * int64_t(mat2.element_size()) == N * K / 2, op,
                    "mat2 of shape ", shape_str(mat2.sizes()), " does not hold ", N, " x ", K,
                    " 4-bit values (self has K = ", K, ")");
  MPS_SHIM_OP_CHECK(group_size == 32 || group_size == 64 || group_size == 128 || group_size == 256, op,
                    "expected qGroupSize to be 32, 64, 128 or 256, got ", group_size);
  const int64_t groups = (K + group_size - 1) / group_size;
  MPS_SHIM_OP_CHECK(sz.dim() == 3 && sz.sizes()[1] == N && sz.sizes()[2] == 2 && sz.sizes()[0] >= groups, op,
                    "expected qScaleAndZeros to be a 3-D tensor with sizes [", groups, ", ", N, ", 2], got ",
                    shape_str(sz.sizes()));
  check_same_dtype(op, self, "self", sz, "qScaleAndZeros");
  Tensor out = empty_tensor({M, N}, self.dtype());
  if (out.numel() > 0) op_backend().int4pack_mm(self, mat2, group_size, sz, out);
  return out;
}

}  // namespace mps_shim::ops
