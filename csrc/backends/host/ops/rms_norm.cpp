// RMS norm on the CPU: one row per task, accumulated and scaled in float32,
// rounded once to the output dtype (as MPS's kernel multiplies the weight in float).
#include <cmath>
#include <vector>

#include "backends/host/ops/host_ops.h"
#include "backends/host/ops/host_util.h"

namespace mps_shim::host {

namespace {

void load_row(const char* p, DType d, int64_t n, float* dst) {
  if (d == DType::Float32) {
    const float* f = reinterpret_cast<const float*>(p);
    std::copy(f, f + n, dst);
    return;
  }
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  if (d == DType::Float16)
    for (int64_t j = 0; j < n; ++j) dst[j] = half_bits_to_float(h[j]);
  else
    for (int64_t j = 0; j < n; ++j) dst[j] = bfloat_bits_to_float(h[j]);
}

void store_row(const float* src, int64_t n, DType d, char* p) {
  if (d == DType::Float32) {
    std::copy(src, src + n, reinterpret_cast<float*>(p));
    return;
  }
  auto* h = reinterpret_cast<uint16_t*>(p);
  if (d == DType::Float16)
    for (int64_t j = 0; j < n; ++j) h[j] = float_to_half_bits(src[j]);
  else
    for (int64_t j = 0; j < n; ++j) h[j] = float_to_bfloat_bits(src[j]);
}

}  // namespace

void HostOps::rms_norm(const Tensor& input, const Tensor* weight, double eps, const Tensor& out, const Tensor& rstd) {
  const int64_t M = input.sizes()[0], N = input.sizes()[1];
  const DType d = input.dtype();
  const size_t el = input.element_size();
  std::vector<float> w(weight ? size_t(N) : 0);
  if (weight) load_row(weight->data(), d, N, w.data());
  float* r = f32_mut(rstd);
  const float feps = float(eps);
  parallel_for(uint64_t(M), std::max<uint64_t>(1, uint64_t(16384 / std::max<int64_t>(N, 1))),
               [&](uint64_t a, uint64_t b) {
                 std::vector<float> row(static_cast<size_t>(N));
                 for (uint64_t i = a; i < b; ++i) {
                   load_row(input.data() + int64_t(i) * N * int64_t(el), d, N, row.data());
                   float ss = 0.0f;
                   for (int64_t j = 0; j < N; ++j) ss += row[size_t(j)] * row[size_t(j)];
                   const float inv = 1.0f / std::sqrt(ss / float(N) + feps);
                   r[i] = inv;
                   if (weight)
                     for (int64_t j = 0; j < N; ++j) row[size_t(j)] = row[size_t(j)] * inv * w[size_t(j)];
                   else
                     for (int64_t j = 0; j < N; ++j) row[size_t(j)] *= inv;
                   store_row(row.data(), N, d, out.data() + int64_t(i) * N * int64_t(el));
                 }
               });
}

}  // namespace mps_shim::host
