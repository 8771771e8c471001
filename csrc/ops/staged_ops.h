// An OpBackend for a device whose memory the host cannot address: each op
// runs another backend's host compute (the host backend's) on host mirrors of
// its tensors (runtime/host_staging.h), copying inputs in and outputs back.
// Correct for every op at the cost of the copies; a GPU backend overrides
// the ops it computes on the device (CUDA: gemm through cuBLAS).
#pragma once

#include "ops/op_backend.h"

namespace mps_shim::ops {

class StagedOps : public OpBackend {
 public:
  explicit StagedOps(OpBackend& host) : host_(host) {}

  void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) override;
  std::string gemm_provider() override;
  void convolution(const Tensor& input, const Tensor& weight, const Tensor* bias, const Tensor& out,
                   const ConvParams& p) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, const Tensor& out,
                 const Tensor& attn, const AttentionParams& p) override;
  void rms_norm(const Tensor& input, const Tensor* weight, double eps, const Tensor& out, const Tensor& rstd) override;
  void int8pack_mm(const Tensor& a, const Tensor& w, const Tensor& scales, const Tensor& out) override;
  void int4pack_mm(const Tensor& a, const Tensor& w, int64_t group_size, const Tensor& scale_and_zeros,
                   const Tensor& out) override;
  void scan(const Tensor& self, const Tensor& out, int64_t dim, ScanOp op) override;
  void randint(const Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) override;
  void sort(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) override;
  void index(const Tensor& src, const IndexSpec& spec, const Tensor& dst) override;
  void index_put(const Tensor& dst, const IndexSpec& spec, const Tensor& src, bool accumulate) override;
  int64_t count_nonzero(const Tensor& self) override;
  void nonzero(const Tensor& self, const Tensor& out, int64_t fill_value) override;
  void pool2d(const Tensor& self, const Tensor& out, const Tensor* indices, const Pool2dParams& p) override;
  void searchsorted(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
                    const std::optional<Tensor>& sorter) override;

 private:
  OpBackend& host_;
};

}  // namespace mps_shim::ops
