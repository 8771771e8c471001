// 2-D pooling on the CPU, one (n, c) plane per work item, spread over cores.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"

namespace mps_shim::host {

void HostOps::pool2d(const Tensor& self, const Tensor& out, const Tensor* indices, const ops::Pool2dParams& p) {
  const int64_t C = self.sizes()[1], H = self.sizes()[2], W = self.sizes()[3];
  const int64_t OH = out.sizes()[2], OW = out.sizes()[3];
  const DType it = self.dtype(), ot = out.dtype();
  const bool floating = is_float_dtype(ot);
  const int64_t iel = int64_t(self.element_size()), oel = int64_t(out.element_size());
  const auto& is = self.strides();
  const auto& os = out.strides();
  const char* in = self.data();
  char* o = out.data();
  int64_t* idx = indices ? reinterpret_cast<int64_t*>(indices->data()) : nullptr;
  const std::vector<int64_t> xs = indices ? indices->strides() : std::vector<int64_t>(4, 0);
  const int64_t planes = self.sizes()[0] * C;
  auto store = [&](char* dst, double v) {
    if (floating)
      store_double(ot, dst, v);
    else
      store_int(ot, dst, int64_t(v));
  };
  parallel_range(planes, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, OH * OW * p.kh * p.kw)),
                 [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / C, c = plane % C;
      const char* ip = in + (n * is[0] + c * is[1]) * iel;
      char* op_ = o + (n * os[0] + c * os[1]) * oel;
      auto at = [&](int64_t h, int64_t w) { return load_double(it, ip + (h * is[2] + w * is[3]) * iel); };
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          char* dst = op_ + (oh * os[2] + ow * os[3]) * oel;
          if (p.kind == ops::Pool2dParams::AdaptiveAvg) {
            const int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
            const int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
            double sum = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) sum += at(h, w);
            store(dst, sum / double((h1 - h0) * (w1 - w0)));
          } else if (p.kind == ops::Pool2dParams::Avg) {
            int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
            int64_t h1 = std::min(h0 + p.kh, H + p.ph), w1 = std::min(w0 + p.kw, W + p.pw);
            const int64_t padded = (h1 - h0) * (w1 - w0);
            h0 = std::max<int64_t>(h0, 0);
            w0 = std::max<int64_t>(w0, 0);
            h1 = std::min(h1, H);
            w1 = std::min(w1, W);
            double sum = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) sum += at(h, w);
            const int64_t div = p.divisor_override ? p.divisor_override
                                : p.count_include_pad ? padded
                                                      : (h1 - h0) * (w1 - w0);
            store(dst, h0 < h1 && w0 < w1 ? sum / double(div) : 0.0);
          } else {
            int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
            const int64_t h1 = std::min(h0 + (p.kh - 1) * p.dh + 1, H), w1 = std::min(w0 + (p.kw - 1) * p.dw + 1, W);
            while (h0 < 0) h0 += p.dh;
            while (w0 < 0) w0 += p.dw;
            double best = -std::numeric_limits<double>::infinity();
            int64_t best_at = h0 * W + w0;
            for (int64_t h = h0; h < h1; h += p.dh) {
              for (int64_t w = w0; w < w1; w += p.dw) {
                const double v = at(h, w);
                if (v > best || std::isnan(v)) {  // ATen's test: the last NaN of the window wins
                  best = v;
                  best_at = h * W + w;
                }
              }
            }
            // The winner's own bits: no rounding through float64 for wide integers.
            const char* src = ip + ((best_at / W) * is[2] + (best_at % W) * is[3]) * iel;
            std::memcpy(dst, src, size_t(oel));
            idx[n * xs[0] + c * xs[1] + oh * xs[2] + ow * xs[3]] = best_at;
          }
        }
      }
    }
  });
}

}  // namespace mps_shim::host
