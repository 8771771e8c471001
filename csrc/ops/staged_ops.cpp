#include "ops/staged_ops.h"

#include "runtime/host_staging.h"

namespace mps_shim::ops {

namespace {

constexpr auto R = HostStaging::Read;
constexpr auto W = HostStaging::Write;

// Runs `compute` on the host mirrors of `uses`, then copies the outputs back.
template <typename F>
auto staged(std::vector<HostStaging::Use> uses, F compute) {
  HostStaging host(uses);
  if constexpr (std::is_void_v<decltype(compute(host))>) {
    compute(host);
    host.write_back();
  } else {
    auto result = compute(host);
    host.write_back();
    return result;
  }
}

// The spec's index tensors are read too: they follow the op's own uses.
std::vector<HostStaging::Use> with_indices(std::vector<HostStaging::Use> uses, const IndexSpec& spec) {
  for (const Tensor& t : spec.indices) uses.push_back({&t, R});
  return uses;
}

IndexSpec host_spec(const IndexSpec& spec, const HostStaging& host, size_t first) {
  IndexSpec s = spec;
  for (size_t k = 0; k < s.indices.size(); ++k) s.indices[k] = host[first + k];
  return s;
}

}  // namespace

void StagedOps::gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) {
  staged({{&a, R}, {&b, R}, {&c, W}}, [&](HostStaging& h) { host_.gemm(h[0], h[1], h[2], alpha, beta); });
}

std::string StagedOps::gemm_provider() { return "host, through host copies: " + host_.gemm_provider(); }

void StagedOps::convolution(const Tensor& input, const Tensor& weight, const Tensor* bias, const Tensor& out,
                            const ConvParams& p) {
  staged({{&input, R}, {&weight, R}, {bias, R}, {&out, W}},
         [&](HostStaging& h) { host_.convolution(h[0], h[1], h.get(2), h[3], p); });
}

void StagedOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, const Tensor& out,
                          const Tensor& attn, const AttentionParams& p) {
  staged({{&q, R}, {&k, R}, {&v, R}, {mask, R}, {&out, W}, {&attn, W}},
         [&](HostStaging& h) { host_.attention(h[0], h[1], h[2], h.get(3), h[4], h[5], p); });
}

void StagedOps::rms_norm(const Tensor& input, const Tensor* weight, double eps, const Tensor& out,
                         const Tensor& rstd) {
  staged({{&input, R}, {weight, R}, {&out, W}, {&rstd, W}},
         [&](HostStaging& h) { host_.rms_norm(h[0], h.get(1), eps, h[2], h[3]); });
}

void StagedOps::int8pack_mm(const Tensor& a, const Tensor& w, const Tensor& scales, const Tensor& out) {
  staged({{&a, R}, {&w, R}, {&scales, R}, {&out, W}},
         [&](HostStaging& h) { host_.int8pack_mm(h[0], h[1], h[2], h[3]); });
}

void StagedOps::int4pack_mm(const Tensor& a, const Tensor& w, int64_t group_size, const Tensor& scale_and_zeros,
                            const Tensor& out) {
  staged({{&a, R}, {&w, R}, {&scale_and_zeros, R}, {&out, W}},
         [&](HostStaging& h) { host_.int4pack_mm(h[0], h[1], group_size, h[2], h[3]); });
}

void StagedOps::scan(const Tensor& self, const Tensor& out, int64_t dim, ScanOp op) {
  staged({{&self, R}, {&out, W}}, [&](HostStaging& h) { host_.scan(h[0], h[1], dim, op); });
}

void StagedOps::randint(const Tensor& out, int64_t low, int64_t high, uint64_t seed, uint64_t offset) {
  staged({{&out, W}}, [&](HostStaging& h) { host_.randint(h[0], low, high, seed, offset); });
}

void StagedOps::sort(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) {
  staged({{&self, R}, {&values, W}, {&indices, W}},
         [&](HostStaging& h) { host_.sort(h[0], h[1], h[2], dim, descending); });
}

void StagedOps::index(const Tensor& src, const IndexSpec& spec, const Tensor& dst) {
  staged(with_indices({{&src, R}, {&dst, W}}, spec),
         [&](HostStaging& h) { host_.index(h[0], host_spec(spec, h, 2), h[1]); });
}

void StagedOps::index_put(const Tensor& dst, const IndexSpec& spec, const Tensor& src, bool accumulate) {
  staged(with_indices({{&dst, W}, {&src, R}}, spec),
         [&](HostStaging& h) { host_.index_put(h[0], host_spec(spec, h, 2), h[1], accumulate); });
}

int64_t StagedOps::count_nonzero(const Tensor& self) {
  return staged({{&self, R}}, [&](HostStaging& h) { return host_.count_nonzero(h[0]); });
}

void StagedOps::nonzero(const Tensor& self, const Tensor& out, int64_t fill_value) {
  staged({{&self, R}, {&out, W}}, [&](HostStaging& h) { host_.nonzero(h[0], h[1], fill_value); });
}

void StagedOps::pool2d(const Tensor& self, const Tensor& out, const Tensor* indices, const Pool2dParams& p) {
  staged({{&self, R}, {&out, W}, {indices, W}}, [&](HostStaging& h) { host_.pool2d(h[0], h[1], h.get(2), p); });
}

void StagedOps::searchsorted(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
                             const std::optional<Tensor>& sorter) {
  staged({{&sorted, R}, {&values, R}, {&out, W}, {sorter ? &*sorter : nullptr, R}}, [&](HostStaging& h) {
    std::optional<Tensor> s;
    if (h.get(3)) s = h[3];
    host_.searchsorted(h[0], h[1], h[2], right, s);
  });
}

}  // namespace mps_shim::ops
