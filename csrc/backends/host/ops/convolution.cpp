// Convolution on the CPU, in float32. Every case is seen as 3-D (1-D and 2-D
// get unit dimensions in front):
// - forward, stride 1: over flat positions of the zero-padded input, one GEMM
//   per kernel tap reading that input in place, or (few channels, small
//   images) one GEMM over a column matrix built from whole-row memcpys;
// - forward, other strides: im2col of a tile of output positions, then one
//   BLAS GEMM per group and tile (a 1x1 kernel with stride 1 and no padding
//   reads the input as it is);
// - depthwise (one input channel per group): a direct loop per output plane,
//   since im2col would copy the input k^3 times for a product with K = k^3;
// - transposed: a GEMM into columns, then col2im scatters them into the output.
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

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

// Floats of a stride-1 column matrix: big enough that BLAS gets one long
// product for common images (16 channels x 3x3 x 112x112 is 1.8M), bounded for huge ones.
const int64_t kColumnBudget = int64_t(1) << 22;

// Row kernels in eight-float vectors (GCC's -O2 vectorises no loop that needs
// a remainder), in an AVX2 clone picked at load time. Vectors stay inside them:
// a 32-byte vector passed by value changes ABI with AVX (GCC's -Wpsabi).
typedef float v8f_mem __attribute__((vector_size(32), aligned(4), may_alias));

// y[0, n) += a * x[0, n)
__attribute__((target_clones("avx2,fma", "default"))) void axpy_row(float* y, const float* x, float a, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    *reinterpret_cast<v8f_mem*>(y + j) += *reinterpret_cast<const v8f_mem*>(x + j) * a;
  for (; j < n; ++j) y[j] += x[j] * a;
}

// y[0, n) = x[0, n) + b
__attribute__((target_clones("avx2,fma", "default"))) void add_scalar_row(float* y, const float* x, float b, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) *reinterpret_cast<v8f_mem*>(y + j) = *reinterpret_cast<const v8f_mem*>(x + j) + b;
  for (; j < n; ++j) y[j] = x[j] + b;
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
  const int64_t tile = pointwise ? plane : std::min(std::max<int64_t>((int64_t(1) << 19) / std::max<int64_t>(rows, 1), 256), plane);
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

// Stride 1, over flat positions of the zero-padded input. Each image is
// padded once into a [c_in, Dp*Hp*Wp] grid; at flat position q the output is
// the sum over taps of w[tap] * padded[q + shift(tap)], so a tap reads the
// padded grid as it is, shifted. The product is computed for every q from the
// first output to the last (the padding columns in between give garbage, ~2/Wp
// of the work for a 3x3 kernel), then the outputs are picked out, with the bias.
struct Shifted {
  int64_t dims[3] = {1, 1, 1};  // Dp, Hp, Wp
  int64_t grid = 0;             // Dp * Hp * Wp
  int64_t positions = 0;        // flat positions from the first output to the last
  std::vector<int64_t> shifts;  // per kernel tap (kd, kh, kw), its offset in the grid

  explicit Shifted(const Geometry& g) {
    for (int d = 0; d < 3; ++d) dims[d] = g.in[d] + 2 * g.pad[d];
    grid = dims[0] * dims[1] * dims[2];
    positions = flat(g.out[0] - 1, g.out[1] - 1, g.out[2]);
    for (int64_t kd = 0; kd < g.ker[0]; ++kd)
      for (int64_t kh = 0; kh < g.ker[1]; ++kh)
        for (int64_t kw = 0; kw < g.ker[2]; ++kw) shifts.push_back(flat(kd * g.dil[0], kh * g.dil[1], kw * g.dil[2]));
  }
  int64_t flat(int64_t d, int64_t h, int64_t w) const { return (d * dims[1] + h) * dims[2] + w; }
};

// Scratch that every element is written to before it is read: no zeroing pass.
std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[size_t(n)]); }

// Channels per chunk for a copy pass over planes of `plane` floats. Passes under
// a megabyte stay on the calling thread: waking the pool costs more, and right
// after a GEMM BLAS's spinning threads would compete with ours.
uint64_t copy_grain(int64_t plane) { return uint64_t(std::max<int64_t>((int64_t(1) << 18) / std::max<int64_t>(plane, 1), 1)); }

// One image's channels into the interior of the grid; the border stays zero from allocation.
void pad_image(const Geometry& g, const Shifted& s, const float* x, float* grid) {
  parallel_for(uint64_t(g.c_in), copy_grain(g.in_plane()), [&](uint64_t c0, uint64_t c1) {
    for (int64_t c = int64_t(c0); c < int64_t(c1); ++c)
      for (int64_t d = 0; d < g.in[0]; ++d)
        for (int64_t h = 0; h < g.in[1]; ++h)
          std::memcpy(grid + c * s.grid + s.flat(d + g.pad[0], h + g.pad[1], g.pad[2]),
                      x + ((c * g.in[0] + d) * g.in[1] + h) * g.in[2], size_t(g.in[2]) * sizeof(float));
  });
}

// The outputs of `channels` planes, picked out of the product over flat positions, plus the bias.
void gather_outputs(const Geometry& g, const Shifted& s, const float* prod, const float* bias, int64_t channels,
                    float* y) {
  const int64_t plane = g.out_plane();
  parallel_for(uint64_t(channels), copy_grain(plane), [&](uint64_t c0, uint64_t c1) {
    for (int64_t c = int64_t(c0); c < int64_t(c1); ++c) {
      const float b = bias ? bias[c] : 0.0f;
      const float* src = prod + c * s.positions;
      float* dst = y + c * plane;
      for (int64_t d = 0; d < g.out[0]; ++d)
        for (int64_t h = 0; h < g.out[1]; ++h) {
          add_scalar_row(dst + (d * g.out[1] + h) * g.out[2], src + s.flat(d, h, 0), b, g.out[2]);
        }
    }
  });
}

// How one group's product over flat positions is formed.
enum class StrideOneForm {
  // One accumulating GEMM per tap, K = channels, B read in place from the grid:
  // nothing copied. Wants many channels and many positions (BLAS threads over N).
  Taps,
  // A column matrix whose row (c, tap) is one contiguous run of the grid (a
  // memcpy), then one GEMM with K = channels * taps, in tiles of positions.
  // For few channels or small images, where per-tap GEMMs are too thin.
  Columns,
};

StrideOneForm stride_one_form(const Geometry& g, const Shifted& s) {
  const int64_t cg = g.c_in / g.groups;
  return cg >= 32 && s.positions >= 2048 ? StrideOneForm::Taps : StrideOneForm::Columns;
}

// prod[og, positions] = sum over taps of wt[tap] (og x cg) times the grid shifted by that tap.
void product_by_taps(const Geometry& g, const Shifted& s, const float* grid, const float* wt, float* prod) {
  const int64_t cg = g.c_in / g.groups, og = g.c_out / g.groups;
  const auto sgemm = sgemm_fn();
  for (size_t tap = 0; tap < s.shifts.size(); ++tap)
    sgemm(kRowMajor, kNoTrans, kNoTrans, as_int(og), as_int(s.positions), as_int(cg), 1.0f,
          wt + int64_t(tap) * og * cg, as_int(cg), grid + s.shifts[tap], as_int(s.grid), tap ? 1.0f : 0.0f, prod,
          as_int(s.positions));
}

// prod[og, positions] = w (og x cg*kvol) times the column matrix, built tile by tile in `col`.
void product_by_columns(const Geometry& g, const Shifted& s, const float* grid, const float* w, int64_t tile,
                        float* col, float* prod) {
  const int64_t cg = g.c_in / g.groups, og = g.c_out / g.groups;
  const int64_t kvol = g.kernel_volume(), rows = cg * kvol;
  const auto sgemm = sgemm_fn();
  for (int64_t q0 = 0; q0 < s.positions; q0 += tile) {
    const int64_t nq = std::min(tile, s.positions - q0);
    parallel_for(uint64_t(rows), 8, [&](uint64_t r0, uint64_t r1) {
      for (int64_t r = int64_t(r0); r < int64_t(r1); ++r)
        std::memcpy(col + r * nq, grid + r / kvol * s.grid + s.shifts[size_t(r % kvol)] + q0,
                    size_t(nq) * sizeof(float));
    });
    sgemm(kRowMajor, kNoTrans, kNoTrans, as_int(og), as_int(nq), as_int(rows), 1.0f, w, as_int(rows), col, as_int(nq),
          0.0f, prod + q0, as_int(s.positions));
  }
}

void forward_stride_one(const Geometry& g, const float* x, const float* w, const float* bias, float* y) {
  const Shifted s(g);
  const StrideOneForm form = stride_one_form(g, s);
  const int64_t cg = g.c_in / g.groups, og = g.c_out / g.groups;
  const int64_t kvol = g.kernel_volume(), rows = cg * kvol, plane = g.out_plane();
  std::vector<float> grid(size_t(g.c_in * s.grid));  // zeroed: the border is the padding
  const auto prod = scratch(og * s.positions);
  // Taps: the weights as [group][tap][og][cg], so each tap's matrix is contiguous.
  std::unique_ptr<float[]> wt, col;
  int64_t tile = 0;
  if (form == StrideOneForm::Taps) {
    wt = scratch(g.c_out * rows);
    for (int64_t o = 0; o < g.c_out; ++o)
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t tap = 0; tap < kvol; ++tap)
          wt[((o / og * kvol + tap) * og + o % og) * cg + c] = w[(o * cg + c) * kvol + tap];
  } else {
    tile = std::min(std::max<int64_t>(kColumnBudget / std::max<int64_t>(rows, 1), 256), s.positions);
    col = scratch(rows * tile);
  }
  for (int64_t n = 0; n < g.n; ++n) {
    pad_image(g, s, x + n * g.c_in * g.in_plane(), grid.data());
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* grid_g = grid.data() + grp * cg * s.grid;
      if (form == StrideOneForm::Taps)
        product_by_taps(g, s, grid_g, wt.get() + grp * og * rows, prod.get());
      else
        product_by_columns(g, s, grid_g, w + grp * og * rows, tile, col.get(), prod.get());
      gather_outputs(g, s, prod.get(), bias ? bias + grp * og : nullptr, og, y + (n * g.c_out + grp * og) * plane);
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
                  if (hi > lo) axpy_row(yrow + lo, xrow + off + lo, wv, hi - lo);
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
  else if (g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1 && g.kernel_volume() > 1)
    forward_stride_one(g, f32(x), f32(w), bp, f32_mut(y));
  else
    forward_gemm(g, f32(x), f32(w), bp, f32_mut(y));
  if (!direct) copy_into(out, y);
}

}  // namespace mps_shim::host
