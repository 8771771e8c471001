// Convolution on the CPU, in float32. Every case is seen as 3-D (1-D and 2-D
// get unit dimensions in front):
// - forward: im2col of a tile of output positions, then one BLAS GEMM per
//   group and tile (a 1x1 kernel with stride 1 and no padding reads the input
//   as it is);
// - depthwise (one input channel per group): a direct loop per output plane,
//   since im2col would copy the input k^3 times for a product with K = k^3;
// - transposed: a GEMM into columns, then col2im scatters them into the output.
#include <algorithm>
#include <climits>
#include <cstring>

#include "backends/host/ops/blas.h"
#include "backends/host/ops/host_ops.h"
#include "backends/host/ops/host_util.h"
#include "util/error.h"

namespace mps_shim::host {

namespace {

struct Geometry {
  int64_t n = 0, c_in = 0, c_out = 0, groups = 1;
  int64_t in[3] = {1, 1, 1}, ker[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_volume() const { return ker[0] * ker[1] * ker[2]; }
};

Geometry geometry(const Tensor& x, const Tensor& w, const Tensor& y, const ops::ConvParams& p) {
  Geometry g;
  const int64_t k = x.dim() - 2, skip = 3 - k;
  g.n = x.sizes()[0];
  g.c_in = x.sizes()[1];
  g.c_out = y.sizes()[1];
  g.groups = p.groups;
  for (int64_t i = 0; i < k; ++i) {
    const size_t s = size_t(i);
    g.in[skip + i] = x.sizes()[s + 2];
    g.ker[skip + i] = w.sizes()[s + 2];
    g.out[skip + i] = y.sizes()[s + 2];
    g.stride[skip + i] = p.stride[s];
    g.pad[skip + i] = p.padding[s];
    g.dil[skip + i] = p.dilation[s];
  }
  return g;
}

int as_int(int64_t v) {
  MPS_SHIM_CHECK(v <= INT_MAX, "convolution: a GEMM dimension exceeds 2^31-1");
  return int(v);
}

// Fills row `r` = (c, kd, kh, kw) of the column matrix for output positions
// [p0, p0 + np): col[r][j] = x[c][id][ih][iw], zero where that falls in the padding.
void im2col_row(const Geometry& g, const float* x, int64_t r, int64_t p0, int64_t np, float* col_row) {
  const int64_t kvol = g.kernel_volume();
  const int64_t c = r / kvol, kr = r % kvol;
  const int64_t kd = kr / (g.ker[1] * g.ker[2]), kh = kr / g.ker[2] % g.ker[1], kw = kr % g.ker[2];
  const float* xc = x + c * g.in_plane();
  const int64_t ow_n = g.out[2];
  int64_t p = p0;
  const int64_t end = p0 + np;
  while (p < end) {
    const int64_t od = p / (g.out[1] * ow_n), oh = p / ow_n % g.out[1], ow0 = p % ow_n;
    const int64_t run = std::min(ow_n - ow0, end - p);  // positions left in this output row
    float* dst = col_row + (p - p0);
    const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
    const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
    if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
      std::fill(dst, dst + run, 0.0f);
    } else {
      const float* src = xc + (id * g.in[1] + ih) * g.in[2];
      const int64_t s = g.stride[2], off = kw * g.dil[2] - g.pad[2];
      // ow in [lo, hi) reads inside the row: 0 <= ow * s + off < in_w.
      int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
      int64_t hi = g.in[2] - off <= 0 ? 0 : (g.in[2] - off + s - 1) / s;
      lo = std::clamp(lo - ow0, int64_t(0), run);
      hi = std::clamp(hi - ow0, lo, run);
      std::fill(dst, dst + lo, 0.0f);
      if (s == 1) {
        std::memcpy(dst + lo, src + (ow0 + lo) + off, size_t(hi - lo) * sizeof(float));
      } else {
        for (int64_t j = lo; j < hi; ++j) dst[j] = src[(ow0 + j) * s + off];
      }
      std::fill(dst + hi, dst + run, 0.0f);
    }
    p += run;
  }
}

void fill_bias(float* y_plane_start, int64_t channels, int64_t plane, const float* bias) {
  for (int64_t c = 0; c < channels; ++c)
    std::fill(y_plane_start + c * plane, y_plane_start + (c + 1) * plane, bias ? bias[c] : 0.0f);
}

void forward_gemm(const Geometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t cg = g.c_in / g.groups, og = g.c_out / g.groups;
  const int64_t kvol = g.kernel_volume(), rows = cg * kvol, plane = g.out_plane();
  const bool pointwise = kvol == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1 && g.pad[0] == 0 &&
                         g.pad[1] == 0 && g.pad[2] == 0;
  const auto sgemm = sgemm_fn();
  // Tiles of output positions keep the column matrix near the caches (and bounded).
  const int64_t tile = pointwise ? plane : std::clamp<int64_t>((int64_t(1) << 19) / std::max<int64_t>(rows, 1), 256, plane);
  std::vector<float> col(pointwise ? 0 : size_t(rows * std::min(tile, plane)));
  for (int64_t n = 0; n < g.n; ++n) {
    float* yn = y + n * g.c_out * plane;
    fill_bias(yn, g.c_out, plane, bias);
    if (rows == 0) continue;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.c_in + grp * cg) * g.in_plane();
      const float* wg = w + grp * og * rows;
      float* yg = yn + grp * og * plane;
      for (int64_t p0 = 0; p0 < plane; p0 += tile) {
        const int64_t np = std::min(tile, plane - p0);
        const float* b = xg + p0;
        int ldb = as_int(plane);
        if (!pointwise) {
          float* cd = col.data();
          parallel_for(uint64_t(rows), 8, [&](uint64_t r0, uint64_t r1) {
            for (uint64_t r = r0; r < r1; ++r) im2col_row(g, xg, int64_t(r), p0, np, cd + int64_t(r) * np);
          });
          b = cd;
          ldb = as_int(np);
        }
        sgemm(kRowMajor, kNoTrans, kNoTrans, as_int(og), as_int(np), as_int(rows), 1.0f, wg, as_int(rows), b, ldb,
              1.0f, yg + p0, as_int(plane));
      }
    }
  }
}

// groups == c_in: each output channel reads one input channel.
void depthwise(const Geometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t mult = g.c_out / g.groups, kvol = g.kernel_volume(), plane = g.out_plane();
  parallel_for(uint64_t(g.n * g.c_out), 1, [&](uint64_t a, uint64_t b) {
    for (uint64_t job = a; job < b; ++job) {
      const int64_t n = int64_t(job) / g.c_out, oc = int64_t(job) % g.c_out, ic = oc / mult;
      const float* xc = x + (n * g.c_in + ic) * g.in_plane();
      const float* wc = w + oc * kvol;
      float* yc = y + (n * g.c_out + oc) * plane;
      std::fill(yc, yc + plane, bias ? bias[oc] : 0.0f);
      const int64_t s = g.stride[2];
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t kd = 0; kd < g.ker[0]; ++kd) {
          const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
          if (id < 0 || id >= g.in[0]) continue;
          for (int64_t oh = 0; oh < g.out[1]; ++oh) {
            float* yrow = yc + (od * g.out[1] + oh) * g.out[2];
            for (int64_t kh = 0; kh < g.ker[1]; ++kh) {
              const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
              if (ih < 0 || ih >= g.in[1]) continue;
              const float* xrow = xc + (id * g.in[1] + ih) * g.in[2];
              for (int64_t kw = 0; kw < g.ker[2]; ++kw) {
                const float wv = wc[(kd * g.ker[1] + kh) * g.ker[2] + kw];
                const int64_t off = kw * g.dil[2] - g.pad[2];
                const int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
                const int64_t hi = std::min(g.out[2], g.in[2] - off <= 0 ? 0 : (g.in[2] - off + s - 1) / s);
                if (s == 1) {
                  const float* xs = xrow + off;
                  for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += xs[ow] * wv;
                } else {
                  for (int64_t ow = lo; ow < hi; ++ow) yrow[ow] += xrow[ow * s + off] * wv;
                }
              }
            }
          }
        }
    }
  });
}

// Transposed: col[(oc, kd, kh, kw), i] = sum_c w[c, oc, k] x[c, i]; each column
// entry lands on output position i * stride - pad + k * dilation.
void transposed(const Geometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t cg = g.c_in / g.groups, og = g.c_out / g.groups;
  const int64_t kvol = g.kernel_volume(), rows = og * kvol, in_plane = g.in_plane(), plane = g.out_plane();
  const auto sgemm = sgemm_fn();
  std::vector<float> col(size_t(rows * in_plane));
  for (int64_t n = 0; n < g.n; ++n) {
    float* yn = y + n * g.c_out * plane;
    fill_bias(yn, g.c_out, plane, bias);
    if (cg == 0) continue;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.c_in + grp * cg) * in_plane;
      const float* wg = w + grp * cg * rows;
      sgemm(kRowMajor, kTrans, kNoTrans, as_int(rows), as_int(in_plane), as_int(cg), 1.0f, wg, as_int(rows), xg,
            as_int(in_plane), 0.0f, col.data(), as_int(in_plane));
      float* yg = yn + grp * og * plane;
      const float* cd = col.data();
      parallel_for(uint64_t(og), 1, [&](uint64_t a, uint64_t b) {
        for (uint64_t oc = a; oc < b; ++oc) {
          float* yc = yg + int64_t(oc) * plane;
          for (int64_t kr = 0; kr < kvol; ++kr) {
            const int64_t kd = kr / (g.ker[1] * g.ker[2]), kh = kr / g.ker[2] % g.ker[1], kw = kr % g.ker[2];
            const float* src = cd + (int64_t(oc) * kvol + kr) * in_plane;
            for (int64_t id = 0; id < g.in[0]; ++id) {
              const int64_t od = id * g.stride[0] - g.pad[0] + kd * g.dil[0];
              if (od < 0 || od >= g.out[0]) continue;
              for (int64_t ih = 0; ih < g.in[1]; ++ih) {
                const int64_t oh = ih * g.stride[1] - g.pad[1] + kh * g.dil[1];
                if (oh < 0 || oh >= g.out[1]) continue;
                const float* srow = src + (id * g.in[1] + ih) * g.in[2];
                float* yrow = yc + (od * g.out[1] + oh) * g.out[2];
                const int64_t off = kw * g.dil[2] - g.pad[2];
                for (int64_t iw = 0; iw < g.in[2]; ++iw) {
                  const int64_t ow = iw * g.stride[2] + off;
                  if (ow >= 0 && ow < g.out[2]) yrow[ow] += srow[iw];
                }
              }
            }
          }
        }
      });
    }
  }
}

}  // namespace

void HostOps::convolution(const Tensor& input, const Tensor& weight, const Tensor* bias, const Tensor& out,
                          const ops::ConvParams& p) {
  const Geometry g = geometry(input, weight, out, p);
  const Tensor x = float32_contiguous(input);
  const Tensor w = float32_contiguous(weight);
  std::optional<Tensor> b;
  if (bias) b = float32_contiguous(*bias);
  const bool direct = out.dtype() == DType::Float32 && out.is_contiguous();
  const Tensor y = direct ? out : empty_tensor(out.sizes(), DType::Float32, DeviceType::CPU);
  const float* bp = b ? f32(*b) : nullptr;
  if (p.transposed)
    transposed(g, f32(x), f32(w), bp, f32_mut(y));
  else if (g.groups == g.c_in && g.groups > 1)
    depthwise(g, f32(x), f32(w), bp, f32_mut(y));
  else
    forward_gemm(g, f32(x), f32(w), bp, f32_mut(y));
  if (!direct) copy_into(out, y);
}

}  // namespace mps_shim::host
