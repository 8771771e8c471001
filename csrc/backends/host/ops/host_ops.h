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
  void scan(const Tensor& self, const Tensor& out, int64_t dim, ops::ScanOp op) override;
  void randint(const Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) override;
  void sort(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) override;
  void index(const Tensor& src, const ops::IndexSpec& spec, const Tensor& dst) override;
  void index_put(const Tensor& dst, const ops::IndexSpec& spec, const Tensor& src, bool accumulate) override;
  int64_t count_nonzero(const Tensor& self) override;
  void nonzero(const Tensor& self, const Tensor& out, int64_t fill_value) override;
  void pool2d(const Tensor& self, const Tensor& out, const Tensor* indices, const ops::Pool2dParams& p) override;
  void searchsorted(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
                    const std::optional<Tensor>& sorter) override;
};

HostOps& host_ops();

}  // namespace mps_shim::host
