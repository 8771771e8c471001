// Scaled dot-product attention on the CPU, one (batch, head) at a time over
// all cores: scores = scale * q k^T by BLAS, a masked, numerically stable
// softmax in float32, out = weights @ v by BLAS. Half and bfloat16 scores and
// weights are rounded to the dtype between steps, as MPS's kernel stores them.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/host/ops/blas.h"
#include "backends/host/ops/host_ops.h"
#include "backends/host/ops/host_util.h"
#include "util/error.h"

namespace mps_shim::host {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// e^x for x <= 0 (x - row max), to ~2 ulp; 0 below -87 (where e^x is subnormal)
// and for -inf. Plain arithmetic so that the loops calling it vectorise.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float t = xc * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

float round_to(float v, DType d) {
  if (d == DType::Float16) return half_bits_to_float(float_to_half_bits(v));
  if (d == DType::BFloat16) return bfloat_bits_to_float(float_to_bfloat_bits(v));
  return v;
}

void store_row(const float* src, int64_t n, DType d, char* dst) {
  if (d == DType::Float32) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  auto* o = reinterpret_cast<uint16_t*>(dst);
  if (d == DType::Float16)
    for (int64_t j = 0; j < n; ++j) o[j] = float_to_half_bits(src[j]);
  else
    for (int64_t j = 0; j < n; ++j) o[j] = float_to_bfloat_bits(src[j]);
}

// The additive form of one mask row: bool -> 0 / -inf, floating -> its value.
void add_mask_row(const Tensor& m, int64_t b, int64_t h, int64_t i, int64_t S, float* row) {
  const auto& st = m.strides();
  const int64_t off = b * st[0] + h * st[1] + i * st[2], js = st[3];
  const char* base = m.data();
  switch (m.dtype()) {
    case DType::Bool: {
      const auto* p = reinterpret_cast<const uint8_t*>(base) + off;
      for (int64_t j = 0; j < S; ++j)
        if (!p[j * js]) row[j] = kNegInf;
      return;
    }
    case DType::Float32: {
      const float* p = reinterpret_cast<const float*>(base) + off;
      for (int64_t j = 0; j < S; ++j) row[j] += p[j * js];
      break;
    }
    case DType::Float16: {
      const auto* p = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t j = 0; j < S; ++j) row[j] += half_bits_to_float(p[j * js]);
      break;
    }
    default: {
      const auto* p = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t j = 0; j < S; ++j) row[j] += bfloat_bits_to_float(p[j * js]);
      break;
    }
  }
  for (int64_t j = 0; j < S; ++j)
    if (std::isnan(row[j])) row[j] = kNegInf;
}

// Eight lanes as GCC vector extensions: SSE pairs by default, one AVX2
// register in the clone picked at load time.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// Vectors cross helper boundaries by reference only: a 32-byte vector passed
// or returned by value has an ABI that depends on whether AVX is enabled, and
// the default clone would disagree with the AVX2 one (GCC's -Wpsabi).
// Eight floats in memory, at any alignment, readable and writable as one vector.
typedef float v8f_mem __attribute__((vector_size(32), aligned(4), may_alias));
__attribute__((always_inline)) inline v8f_mem& lanes8(float* p) { return *reinterpret_cast<v8f_mem*>(p); }

// exp_nonpositive on eight lanes, in place.
__attribute__((always_inline)) inline void exp8_nonpositive(v8f& x) {
  const v8f lo = v8f{} - 87.0f;
  const v8f xc = x < lo ? lo : x;
  const v8f magic = v8f{} + 12582912.0f;
  const v8f n = (xc * 1.44269504088896341f + magic) - magic;
  const v8f r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723e-06f;
  v8f p = v8f{} + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const v8f result = p * scale;
  x = x < lo ? v8f{} : result;
}

// Softmax of one row in place; a row with nothing to attend (all -inf) becomes zeros.
__attribute__((target_clones("avx2,fma", "default"))) void softmax_row(float* row, int64_t n) {
  const int64_t nb = n / 8 * 8;
  v8f vmax = v8f{} + kNegInf;
  for (int64_t j = 0; j < nb; j += 8) {
    const v8f v = lanes8(row + j);
    vmax = v > vmax ? v : vmax;
  }
  float mx = kNegInf;
  for (int t = 0; t < 8; ++t) mx = std::max(mx, vmax[t]);
  for (int64_t j = nb; j < n; ++j) mx = std::max(mx, row[j]);
  if (mx == kNegInf || std::isnan(mx)) {
    std::fill(row, row + n, 0.0f);
    return;
  }
  v8f vsum{};
  for (int64_t j = 0; j < nb; j += 8) {
    v8f e = lanes8(row + j) - mx;
    exp8_nonpositive(e);
    lanes8(row + j) = e;
    vsum += e;
  }
  float sum = 0.0f;
  for (int t = 0; t < 8; ++t) sum += vsum[t];
  for (int64_t j = nb; j < n; ++j) {
    row[j] = exp_nonpositive(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < nb; j += 8) lanes8(row + j) *= inv;
  for (int64_t j = nb; j < n; ++j) row[j] *= inv;
}

// BLAS can read a [rows, cols] float32 matrix with unit column stride and a row stride of at least cols.
bool blas_readable(const Tensor& t) {
  const int64_t rows = t.sizes()[2], cols = t.sizes()[3];
  return t.dtype() == DType::Float32 && (cols <= 1 || t.strides()[3] == 1) &&
         (rows <= 1 || t.strides()[2] >= std::max<int64_t>(cols, 1)) && t.strides()[2] <= INT_MAX;
}

Tensor readable(const Tensor& t) { return blas_readable(t) ? t : float32_contiguous(t); }

int row_ld(const Tensor& t) {
  return t.sizes()[2] <= 1 ? int(std::max<int64_t>(t.sizes()[3], 1)) : int(std::max<int64_t>(t.strides()[2], 1));
}

}  // namespace

void HostOps::attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor* mask,
                        const Tensor& out, const Tensor& attn, const ops::AttentionParams& p) {
  const int64_t B = q_in.sizes()[0], H = q_in.sizes()[1], L = q_in.sizes()[2], E = q_in.sizes()[3];
  const int64_t S = k_in.sizes()[2], Ev = v_in.sizes()[3];
  MPS_SHIM_CHECK(L <= INT_MAX && S <= INT_MAX && E <= INT_MAX && Ev <= INT_MAX,
                 "scaled_dot_product_attention: a dimension exceeds 2^31-1");
  if (L == 0) return;
  const Tensor q = readable(q_in), k = readable(k_in), v = readable(v_in);
  const DType dt = out.dtype();
  const bool f32_out = dt == DType::Float32;
  const auto sgemm = sgemm_fn();
  const float scale = float(p.scale);
  const int ldq = row_ld(q), ldk = row_ld(k), ldv = row_ld(v);
  const size_t el = out.element_size();
  // Three passes: the products one (batch, head) at a time, each threaded by
  // the BLAS; the softmax rows over all cores. (Products called from every
  // core at once would make a threaded BLAS's pool serve several callers,
  // which runs slower than either.) Float32 scores live in attn itself.
  const int64_t BH = B * H;
  std::vector<float> scores(f32_out ? 0 : size_t(BH * L * S)), result(f32_out ? 0 : size_t(BH * L * Ev));
  auto scores_of = [&](int64_t bh) { return f32_out ? f32_mut(attn) + bh * L * S : scores.data() + bh * L * S; };
  auto result_of = [&](int64_t bh) { return f32_out ? f32_mut(out) + bh * L * Ev : result.data() + bh * L * Ev; };
  auto head = [&](const Tensor& t, int64_t bh, bool kv) {
    const int64_t b = bh / H, h = kv ? bh % H / p.gqa_factor : bh % H;
    return f32(t) + b * t.strides()[0] + h * t.strides()[1];
  };
  if (S > 0) {
    for (int64_t bh = 0; bh < BH; ++bh) {
      float* sc = scores_of(bh);
      if (E > 0)
        sgemm(kRowMajor, kNoTrans, kTrans, int(L), int(S), int(E), scale, head(q, bh, false), ldq, head(k, bh, true),
              ldk, 0.0f, sc, int(S));
      else
        std::fill(sc, sc + L * S, 0.0f);
    }
  }
  parallel_for(uint64_t(BH * L), std::max<uint64_t>(1, uint64_t(4096 / std::max<int64_t>(S, 1))),
               [&](uint64_t first, uint64_t end) {
                 for (uint64_t row_id = first; row_id < end; ++row_id) {
                   const int64_t bh = int64_t(row_id) / L, i = int64_t(row_id) % L;
                   float* row = scores_of(bh) + i * S;
                   if (!f32_out)
                     for (int64_t j = 0; j < S; ++j) row[j] = round_to(row[j], dt);
                   if (mask) add_mask_row(*mask, bh / H, bh % H, i, S, row);
                   if (p.causal)
                     for (int64_t j = i + 1; j < S; ++j) row[j] = kNegInf;
                   softmax_row(row, S);
                   if (!f32_out) {
                     store_row(row, S, dt, attn.data() + int64_t(row_id) * S * int64_t(el));
                     for (int64_t j = 0; j < S; ++j) row[j] = round_to(row[j], dt);
                   }
                 }
               });
  if (Ev == 0) return;
  for (int64_t bh = 0; bh < BH; ++bh) {
    float* res = result_of(bh);
    if (S > 0)
      sgemm(kRowMajor, kNoTrans, kNoTrans, int(L), int(Ev), int(S), 1.0f, scores_of(bh), int(S), head(v, bh, true),
            ldv, 0.0f, res, int(Ev));
    else
      std::fill(res, res + L * Ev, 0.0f);
  }
  if (!f32_out) store_row(result.data(), BH * L * Ev, dt, out.data());
}

}  // namespace mps_shim::host
