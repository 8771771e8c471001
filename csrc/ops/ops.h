// ATen fallback ops over runtime Tensors: what torch's c_shim_mps.h entry
// points do, minus the handles (csrc/abi/aten_abi.mm forwards to these).
// Semantics are ATen's; each op checks its arguments and throws OpError.
#pragma once

#include <optional>
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

}  // namespace mps_shim::ops
