// Weight-only quantized products on the CPU: tiles of weight rows are
// dequantized to float32 (int8: as they are, the scale applied to the
// product) and multiplied by BLAS, tiles spread over the cores.
#include <algorithm>
#include <climits>
#include <vector>

#include "backends/host/ops/blas.h"
#include "backends/host/ops/host_ops.h"
#include "backends/host/ops/host_util.h"
#include "util/error.h"

namespace mps_shim::host {

namespace {

constexpr int64_t kTileRows = 64;

// out[:, n0:n1] = a @ wt^T, wt the dequantized rows [n1 - n0, K]; then
// column scale (int8) and rounding into out's dtype.
template <typename Dequant>
void tiled_product(const Tensor& a, const Tensor& out, int64_t N, Dequant dequant, const float* col_scale) {
  const int64_t M = a.sizes()[0], K = a.sizes()[1];
  MPS_SHIM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX, "quantized mm: a dimension exceeds 2^31-1");
  const Tensor af = float32_contiguous(a);
  const bool f32_out = out.dtype() == DType::Float32;
  const Tensor of = f32_out ? out : empty_tensor(out.sizes(), DType::Float32, DeviceType::CPU);
  const auto sgemm = sgemm_fn();
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
  parallel_for(uint64_t(tiles), 1, [&](uint64_t t0, uint64_t t1) {
    std::vector<float> w(size_t(kTileRows * K));
    for (uint64_t t = t0; t < t1; ++t) {
      const int64_t n0 = int64_t(t) * kTileRows, rows = std::min(kTileRows, N - n0);
      for (int64_t r = 0; r < rows; ++r) dequant(n0 + r, w.data() + r * K);
      float* c = f32_mut(of) + n0;
      if (K > 0)
        sgemm(kRowMajor, kNoTrans, kTrans, int(M), int(rows), int(K), 1.0f, f32(af), int(std::max<int64_t>(K, 1)),
              w.data(), int(std::max<int64_t>(K, 1)), 0.0f, c, int(N));
      else
        for (int64_t m = 0; m < M; ++m) std::fill(c + m * N, c + m * N + rows, 0.0f);
      if (col_scale)
        for (int64_t m = 0; m < M; ++m)
          for (int64_t r = 0; r < rows; ++r) c[m * N + r] *= col_scale[n0 + r];
    }
  });
  if (!f32_out) copy_into(out, of);
}

}  // namespace

void HostOps::int8pack_mm(const Tensor& a, const Tensor& w, const Tensor& scales, const Tensor& out) {
  const int64_t N = w.sizes()[0], K = w.sizes()[1];
  const Tensor s = float32_contiguous(scales);
  const char* base = w.data();
  const int64_t rs = w.strides()[0], cs = w.strides()[1];
  tiled_product(
      a, out, N,
      [&](int64_t n, float* dst) {
        const auto* row = reinterpret_cast<const int8_t*>(base) + n * rs;
        for (int64_t k = 0; k < K; ++k) dst[k] = float(row[k * cs]);
      },
      f32(s));
}

void HostOps::int4pack_mm(const Tensor& a, const Tensor& w, int64_t group_size, const Tensor& scale_and_zeros,
                          const Tensor& out) {
  const int64_t K = a.sizes()[1], N = out.sizes()[1];
  const Tensor sz = float32_contiguous(scale_and_zeros);  // [groups, N, 2]
  const auto* bytes = reinterpret_cast<const uint8_t*>(w.data());
  const float* szp = f32(sz);
  tiled_product(
      a, out, N,
      [&](int64_t n, float* dst) {
        const uint8_t* row = bytes + n * (K / 2);
        for (int64_t k = 0; k < K; k += 2) {
          const float* g = szp + ((k / group_size) * N + n) * 2;
          const float scale = g[0], zero = g[1] - 8.0f * g[0];
          const uint8_t b = row[k / 2];
          dst[k] = float(b & 0xF) * scale + zero;
          dst[k + 1] = float(b >> 4) * scale + zero;
        }
      },
      nullptr);
}

}  // namespace mps_shim::host
