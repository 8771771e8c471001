// The ATen fallback ops on the CUDA backend: products through cuBLAS (loaded
// at run time), the rest on the host through host copies (ops/staged_ops.h).
#pragma once

#include "ops/op_backend.h"

namespace mps_shim::cuda {

ops::OpBackend& cuda_ops();

}  // namespace mps_shim::cuda
