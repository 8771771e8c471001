// The compute that ATen fallback ops need from a backend. The ops layer
// (csrc/ops/*.cpp) checks shapes and dtypes, allocates and resizes outputs,
// then calls one of these with arguments that are already consistent: a
// backend only computes. The host backend implements them on the CPU (BLAS
// for products); a GPU backend supplies its own (cuBLAS, its own kernels).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace mps_shim::ops {

// A convolution's geometry, one entry per spatial dimension (1, 2 or 3), already
// expanded from torch's single-value lists.
struct ConvParams {
  std::vector<int64_t> stride, padding, dilation, output_padding;
  bool transposed = false;
  int64_t groups = 1;
};

// Scaled dot-product attention on [B, H, L, E] views (batch dimensions already
// broadcast and flattened). k and v have H / gqa_factor heads; query head h
// reads key/value head h / gqa_factor.
struct AttentionParams {
  double scale = 1.0;
  bool causal = false;        // query row i sees key columns j <= i
  int64_t gqa_factor = 1;
};

class OpBackend {
 public:
  virtual ~OpBackend() = default;

  // c[i] = alpha * a[i] @ b[i] + beta * c[i] for every i of the leading batch
  // dimension: a [B, M, K], b [B, K, N], c [B, M, N]. One dtype for all three,
  // any strides (c may not overlap a or b). beta == 0 ignores c's old contents, NaN included.
  virtual void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) = 0;

  // out = conv(input, weight) + bias, or its transpose. input [N, C_in, *in],
  // weight [C_out, C_in / groups, *k] ([C_in, C_out / groups, *k] when
  // transposed), bias [C_out] or null, out [N, C_out, *out] with any strides.
  // One dtype for all (float32, float16 or bfloat16), computed in float32.
  virtual void convolution(const Tensor& input, const Tensor& weight, const Tensor* bias, const Tensor& out,
                           const ConvParams& p) = 0;

  // q [B, H, L, E], k [B, H / g, S, E], v [B, H / g, S, Ev]; mask null or
  // [B, H, L, S] (broadcast by strides; bool: true keeps, floating: added);
  // out [B, H, L, Ev] and attn [B, H, L, S] get the output and the softmax
  // weights. Scores and weights are rounded to the dtype (as MPS's kernel
  // stores them); a row with nothing to attend gets zero weights.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, const Tensor& out,
                         const Tensor& attn, const AttentionParams& p) = 0;

  // input [M, N] rows (any strides), weight [N] or null; out [M, N] = x * rstd * w
  // rounded once, rstd [M] float32 = 1 / sqrt(mean(x^2) + eps).
  virtual void rms_norm(const Tensor& input, const Tensor* weight, double eps, const Tensor& out,
                        const Tensor& rstd) = 0;

  // out [M, N] = (a [M, K] @ w[N, K]^T) * scales[N]; w int8.
  virtual void int8pack_mm(const Tensor& a, const Tensor& w, const Tensor& scales, const Tensor& out) = 0;
  // out [M, N] = a [M, K] @ dequant(w)^T: w is N*K/2 contiguous bytes, row n
  // holding k in the low nibble of byte k/2 when k is even and in the high
  // nibble when odd; dequant = (q - 8) * sz[k / group, n, 0] + sz[k / group, n, 1].
  virtual void int4pack_mm(const Tensor& a, const Tensor& w, int64_t group_size, const Tensor& scale_and_zeros,
                           const Tensor& out) = 0;

  // Where products come from, for runtime_info: "openblas (path)", "builtin (why)".
  virtual std::string gemm_provider() = 0;
};

// The process backend's ops.
OpBackend& op_backend();

}  // namespace mps_shim::ops
