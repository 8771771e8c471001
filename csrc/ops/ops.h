// ATen fallback ops over runtime Tensors: what torch's c_shim_mps.h entry
// points do, minus the handles (csrc/abi/aten_abi.mm forwards to these).
// Semantics are ATen's; each op checks its arguments and throws OpError.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace mps_shim::ops {

// ---- matrix products (matmul.cpp) ----
void mm_out(Tensor& out, const Tensor& self, const Tensor& mat2);
void addmm_out(Tensor& out, const Tensor& self, const Tensor& mat1, const Tensor& mat2, double beta, double alpha);
void bmm_out(Tensor& out, const Tensor& self, const Tensor& mat2);
void baddbmm_out(Tensor& out, const Tensor& self, const Tensor& batch1, const Tensor& batch2, double beta,
                 double alpha);
Tensor addmv(const Tensor& self, const Tensor& mat, const Tensor& vec, double beta, double alpha);

// ---- convolution (convolution.cpp) ----
Tensor convolution(const Tensor& input, const Tensor& weight, const std::optional<Tensor>& bias,
                   const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                   const std::vector<int64_t>& dilation, bool transposed, const std::vector<int64_t>& output_padding,
                   int64_t groups);

// ---- attention (attention.cpp) ----
// _scaled_dot_product_attention_math_for_mps(_v2): (output, attention weights).
std::pair<Tensor, Tensor> sdpa_math_for_mps(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const std::optional<Tensor>& attn_mask, double dropout_p, bool is_causal,
                                            const std::optional<Tensor>& dropout_mask, std::optional<double> scale,
                                            bool enable_gqa);

// ---- normalization (rms_norm.cpp) ----
// _fused_rms_norm: (output, rstd).
std::pair<Tensor, Tensor> fused_rms_norm(const Tensor& input, const std::vector<int64_t>& normalized_shape,
                                         const std::optional<Tensor>& weight, std::optional<double> eps);

// ---- quantized products (quantized.cpp) ----
Tensor weight_int8pack_mm(const Tensor& self, const Tensor& mat2, const Tensor& scales);
Tensor weight_int4pack_mm(const Tensor& self, const Tensor& mat2, int64_t group_size, const Tensor& scale_and_zeros);

}  // namespace mps_shim::ops
