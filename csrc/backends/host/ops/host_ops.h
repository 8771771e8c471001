// The host backend's ATen op compute (ops/op_backend.h) on the CPU. One file
// per op family under backends/host/ops/.
#pragma once

#include "ops/op_backend.h"

namespace mps_shim::host {

class HostOps : public ops::OpBackend {
 public:
  void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) override;
  std::string gemm_provider() override;
};

HostOps& host_ops();

}  // namespace mps_shim::host
