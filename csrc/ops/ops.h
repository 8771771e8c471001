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
// ---- scans (scan.cpp); dtype: an optional c10 dtype code ----
Tensor cumsum(const Tensor& self, int64_t dim, const int32_t* dtype);
Tensor cumprod(const Tensor& self, int64_t dim, const int32_t* dtype);

// ---- random numbers (random.cpp) ----
void randint_low_out(Tensor& out, int64_t low, int64_t high, const std::vector<int64_t>& size);
// Sets the process stream's seed and restarts it (mps_shim_manual_seed).
void manual_seed(uint64_t seed);

// ---- sorting (sort.cpp): (values, indices) ----
std::pair<Tensor, Tensor> sort(const Tensor& self, const int32_t* stable, int64_t dim, bool descending);
std::pair<Tensor, Tensor> topk(const Tensor& self, int64_t k, int64_t dim, bool largest, bool sorted);

// ---- indexing (indexing.cpp); an absent index is a full slice ----
Tensor index(const Tensor& self, const std::vector<std::optional<Tensor>>& indices);
Tensor index_put(const Tensor& self, const std::vector<std::optional<Tensor>>& indices, const Tensor& values,
                 bool accumulate);
Tensor nonzero(const Tensor& self);
Tensor nonzero_static(const Tensor& self, int64_t size, int64_t fill_value);
Tensor masked_select(const Tensor& self, const Tensor& mask);

// ---- searching (search.cpp); side: an optional "left" / "right" ----
Tensor searchsorted(const Tensor& sorted_sequence, const Tensor& self, bool out_int32, bool right,
                    const char* const* side, const std::optional<Tensor>& sorter);
Tensor bucketize(const Tensor& self, const Tensor& boundaries, bool out_int32, bool right);

// ---- pooling (pooling.cpp); divisor_override: optional ----
Tensor avg_pool2d(const Tensor& self, const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
                  const std::vector<int64_t>& padding, bool ceil_mode, bool count_include_pad,
                  const int64_t* divisor_override);
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& self, const std::vector<int64_t>& kernel_size,
                                                  const std::vector<int64_t>& stride,
                                                  const std::vector<int64_t>& padding,
                                                  const std::vector<int64_t>& dilation, bool ceil_mode);
Tensor adaptive_avg_pool2d(const Tensor& self, const std::vector<int64_t>& output_size);

// ---- copies (shape.cpp) ----
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
void fill_(Tensor& self, double value);
Tensor repeat_interleave(const Tensor& repeats, const int64_t* output_size);
// mode: "constant" (value, default 0), "reflect", "replicate" or "circular"; null means constant.
Tensor pad(const Tensor& self, const std::vector<int64_t>& pads, const char* mode, const double* value);

}  // namespace mps_shim::ops
