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

enum class ScanOp { Sum, Prod };

// The advanced indices of one index / index_put, as ops/indexing.cpp lowers them.
struct IndexSpec {
  std::vector<Tensor> indices;  // int64 or int32, each viewed in the iteration shape
  std::vector<int64_t> sizes;   // size of the dimension each index selects along
  std::vector<int64_t> strides; // its stride in the indexed tensor, in elements
  std::vector<int64_t> dims;    // its dimension number in the user's tensor, for error messages
};

// A 2-D pooling window set, as ops/pooling.cpp derives it. Adaptive: row o spans
// [floor(o * H / OH), ceil((o + 1) * H / OH)) and the other fields are unused.
struct Pool2dParams {
  enum Kind { Avg, Max, AdaptiveAvg } kind = Avg;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool count_include_pad = true;
  int64_t divisor_override = 0;  // 0: none
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

  // ---- scans (ops/scan.cpp) ----
  // out = cumulative sum or product of self along `dim`, out's shape. self is first converted to out's
  // dtype (ATen's self.to(dtype)); floating types accumulate in float64, integers in int64 (wrapping),
  // and each output is rounded once. out does not overlap self.
  virtual void scan(const Tensor& self, const Tensor& out, int64_t dim, ScanOp op) = 0;

  // ---- random numbers (ops/random.cpp) ----
  // out[i] (row-major element i) = a uniform integer in [low, high) drawn from the counter-based stream
  // (seed, offset + i): the same seed and offset give the same numbers on every backend.
  virtual void randint(const Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) = 0;

  // ---- sorting (ops/sort.cpp) ----
  // Sorts every line of self along `dim` and writes its first k = values.sizes()[dim] entries: values
  // (self's dtype) and their positions (int64). Ascending or descending, NaN above every number, ties in
  // index order (stable). values and indices have self's shape except k along dim.
  virtual void sort(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) = 0;

  // ---- advanced indexing (ops/indexing.cpp) ----
  // ATen's restrided form: `dst` and `src` share one iteration shape; element p reads or writes the indexed
  // tensor at its view's offset plus sum_k idx_k[p] * strides[k], where idx_k (int64 or int32, viewed in the
  // iteration shape) selects along a dimension of size sizes[k]; negative indices wrap, others out of
  // range fail with OpError naming dims[k].
  // index: dst[p] = src_restrided[p + indices]. index_put: dst_restrided[p + indices] = src[p] (or +=).
  virtual void index(const Tensor& src, const IndexSpec& spec, const Tensor& dst) = 0;
  virtual void index_put(const Tensor& dst, const IndexSpec& spec, const Tensor& src, bool accumulate) = 0;
  // Number of nonzero elements (NaN counts) of self.
  virtual int64_t count_nonzero(const Tensor& self) = 0;
  // out [rows, ndim] int64: the coordinates of self's first `rows` nonzero elements in row-major order,
  // rows past the last one filled with fill_value.
  virtual void nonzero(const Tensor& self, const Tensor& out, int64_t fill_value) = 0;

  // ---- pooling (ops/pooling.cpp) ----
  // self [N, C, H, W] -> out [N, C, OH, OW] (and, for Max, indices: int64 positions h * W + w in the
  // plane, NaN winning as in ATen). Avg divides by divisor_override, else by the window clipped to the
  // padded input (count_include_pad) or to the input. Floating types compute in float64, rounded once.
  virtual void pool2d(const Tensor& self, const Tensor& out, const Tensor* indices, const Pool2dParams& p) = 0;

  // ---- searching (ops/search.cpp) ----
  // out[..., j] = the insertion point of values[..., j] in its row of `sorted` (the last dimension; one
  // row for all when sorted is 1-D): the first i with !(seq[i] < v) (right: !(seq[i] <= v)), read
  // through `sorter` (int64 positions, sorted's shape) when given. out is int64 or int32; values and
  // sorted are compared as int64 when both are integers, else as float64.
  virtual void searchsorted(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
                            const std::optional<Tensor>& sorter) = 0;
};

// The process backend's ops.
OpBackend& op_backend();

}  // namespace mps_shim::ops
