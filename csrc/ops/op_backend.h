// The compute that ATen fallback ops need from a backend. The ops layer
// (csrc/ops/*.cpp) checks shapes and dtypes, allocates and resizes outputs,
// then calls one of these with arguments that are already consistent: a
// backend only computes. The host backend implements them on the CPU (BLAS
// for products); a GPU backend supplies its own (cuBLAS, its own kernels).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/tensor.h"

namespace mps_shim::ops {

class OpBackend {
 public:
  virtual ~OpBackend() = default;

  // c[i] = alpha * a[i] @ b[i] + beta * c[i] for every i of the leading batch
  // dimension: a [B, M, K], b [B, K, N], c [B, M, N]. One dtype for all three,
  // any strides (c may not overlap a or b). beta == 0 ignores c's old contents, NaN included.
  virtual void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) = 0;

  // Where products come from, for runtime_info: "openblas (path)", "builtin (why)".
  virtual std::string gemm_provider() = 0;
};

// The process backend's ops.
OpBackend& op_backend();

}  // namespace mps_shim::ops
