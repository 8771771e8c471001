// The host backend's ATen op compute (ops/op_backend.h) on the CPU. One file
// per op family under backends/host/ops/.
#pragma once

#include "ops/op_backend.h"

namespace mps_shim::host {

class HostOps : public ops::OpBackend {
 public:
  void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) override;
  std::string gemm_provider() override;
  void convolution(const Tensor& input, const Tensor& weight, const Tensor* bias, const Tensor& out,
                   const ops::ConvParams& p) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, const Tensor& out,
                 const Tensor& attn, const ops::AttentionParams& p) override;
  void rms_norm(const Tensor& input, const Tensor* weight, double eps, const Tensor& out, const Tensor& rstd) override;
  void int8pack_mm(const Tensor& a, const Tensor& w, const Tensor& scales, const Tensor& out) override;
  void int4pack_mm(const Tensor& a, const Tensor& w, int64_t group_size, const Tensor& scale_and_zeros,
                   const Tensor& out) override;
};

HostOps& host_ops();

}  // namespace mps_shim::host
