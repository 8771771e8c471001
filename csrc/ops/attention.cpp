// _scaled_dot_product_attention_math_for_mps(_v2): torch's MPS math path
// (aten/src/ATen/native/mps/operations/Attention.mm): batch dimensions of
// q/k/v broadcast, GQA by head groups, bool or additive masks broadcast to
// [..., L, S], outputs (out [..., L, Ev], attn [..., L, S]) contiguous in q's
// dtype, as the meta function describes them.
#include <cmath>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

bool is_sdpa_dtype(DType d) { return d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16; }

std::vector<int64_t> batch_of(const Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end() - 2);
}

// torch's infer_size: trailing-aligned broadcast of two shapes.
std::vector<int64_t> broadcast_shapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const char* what) {
  const size_t n = std::max(a.size(), b.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MPS_SHIM_OP_CHECK(x == y || x == 1 || y == 1, kOp, what, ": batch shapes ", shape_str(a), " and ", shape_str(b),
                      " cannot broadcast");
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// `t` ([..., R, C]) broadcast to batch + [R, C], then seen as [B, H, R, C] with
// B the product of all batch dimensions but the last. A copy only where the
// broadcast dimensions cannot merge into one stride.
Tensor as_4d(const Tensor& t, const std::vector<int64_t>& batch) {
  const size_t nb = batch.size(), nd = t.dim();
  std::vector<int64_t> sizes(batch), strides(nb + 2, 0);
  sizes.push_back(t.sizes()[nd - 2]);
  sizes.push_back(t.sizes()[nd - 1]);
  for (size_t i = 0; i < nb + 2; ++i) {
    const int64_t src = int64_t(i) - int64_t(nb + 2 - nd);
    if (src >= 0 && t.sizes()[size_t(src)] != 1) strides[i] = t.strides()[size_t(src)];
    if (src >= 0 && t.sizes()[size_t(src)] == 1 && sizes[i] == 1) strides[i] = t.strides()[size_t(src)];
  }
  Tensor e = t.view(sizes, strides, t.storage_offset());
  if (nb <= 2) {
    std::vector<int64_t> s4(4 - (nb + 2), 1), st4(4 - (nb + 2), 0);
    s4.insert(s4.end(), sizes.begin(), sizes.end());
    st4.insert(st4.end(), strides.begin(), strides.end());
    return e.view(s4, st4, e.storage_offset());
  }
  // Merge dimensions 0 .. nb-2 into one when their strides nest.
  bool mergeable = true;
  int64_t inner = -1;  // the last non-unit dimension seen, walking inwards
  for (size_t i = 0; i + 1 < nb; ++i) {
    if (sizes[i] == 1) continue;
    if (inner >= 0 && strides[size_t(inner)] != strides[i] * sizes[i]) mergeable = false;
    inner = int64_t(i);
  }
  if (!mergeable) {
    Tensor c = empty_tensor(sizes, t.dtype(), DeviceType::CPU);
    copy_into(c, e);
    e = c;
    strides = c.strides();
  }
  int64_t b = 1, b_stride = 0;
  for (size_t i = 0; i + 1 < nb; ++i) {
    b *= sizes[i];
    if (sizes[i] != 1) b_stride = strides[i];  // the innermost non-unit merged stride
  }
  return e.view({b, sizes[nb - 1], sizes[nb], sizes[nb + 1]}, {b_stride, strides[nb - 1], strides[nb], strides[nb + 1]},
                e.storage_offset());
}

}  // namespace

std::pair<Tensor, Tensor> sdpa_math_for_mps(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const std::optional<Tensor>& attn_mask, double dropout_p, bool is_causal,
                                            const std::optional<Tensor>& dropout_mask, std::optional<double> scale,
                                            bool enable_gqa) {
  (void)dropout_mask;  // MPS's math path ignores it; with dropout_p == 0 it has no effect
  const Tensor* named[] = {&query, &key, &value};
  const char* names[] = {"query", "key", "value"};
  for (int i = 0; i < 3; ++i) {
    check_device(kOp, *named[i], names[i]);
    MPS_SHIM_OP_CHECK(is_sdpa_dtype(named[i]->dtype()), kOp, names[i], " must be float32, float16 or bfloat16, got ",
                      dtype_name(int32_t(named[i]->dtype())));
    MPS_SHIM_OP_CHECK(named[i]->dim() >= 2, kOp, names[i], " must have at least 2 dimensions, got shape ",
                      shape_str(named[i]->sizes()));
  }
  check_same_dtype(kOp, query, "query", key, "key");
  check_same_dtype(kOp, query, "query", value, "value");
  MPS_SHIM_OP_CHECK(dropout_p == 0.0, kOp, "dropout_p must be 0 (dropout is not supported), got ", dropout_p);
  MPS_SHIM_OP_CHECK(!(is_causal && attn_mask), kOp, "explicit attn_mask should not be set when is_causal=True");
  const int64_t L = query.sizes().end()[-2], E = query.sizes().end()[-1];
  const int64_t S = key.sizes().end()[-2], Ev = value.sizes().end()[-1];
  MPS_SHIM_OP_CHECK(key.sizes().end()[-1] == E, kOp, "query and key must have the same head dimension, got query ",
                    shape_str(query.sizes()), " and key ", shape_str(key.sizes()));
  MPS_SHIM_OP_CHECK(value.sizes().end()[-2] == S, kOp, "key and value must have the same sequence length, got key ",
                    shape_str(key.sizes()), " and value ", shape_str(value.sizes()));

  std::vector<int64_t> qb = batch_of(query), kb = batch_of(key), vb = batch_of(value);
  int64_t gqa = 1;
  if (enable_gqa && query.dim() >= 3 && key.dim() >= 3) {
    const int64_t qh = qb.back(), kh = kb.back();
    if (kh > 0 && qh / kh > 1) {
      MPS_SHIM_OP_CHECK(qh % kh == 0, kOp, "for GQA, the query's number of heads (", qh,
                        ") must be divisible by the key's (", kh, ")");
      MPS_SHIM_OP_CHECK(value.dim() >= 3 && vb.back() == kh, kOp, "for GQA, key and value must have one number of heads, got ",
                        kh, " and ", value.dim() >= 3 ? vb.back() : 1);
      gqa = qh / kh;
      kb.back() = qh;  // broadcast as if repeated; the backend maps head h to h / gqa
      vb.back() = qh;
    }
  }
  const std::vector<int64_t> batch = broadcast_shapes(broadcast_shapes(qb, kb, "query and key"), vb, "value");
  std::vector<int64_t> kv_batch = batch;
  if (gqa > 1) kv_batch.back() /= gqa;

  const Tensor q4 = as_4d(query, batch), k4 = as_4d(key, kv_batch), v4 = as_4d(value, kv_batch);
  std::optional<Tensor> m4;
  if (attn_mask) {
    const Tensor& m = *attn_mask;
    check_device(kOp, m, "attn_mask");
    MPS_SHIM_OP_CHECK(m.dtype() == DType::Bool || is_sdpa_dtype(m.dtype()), kOp,
                      "attn_mask must be bool, float32, float16 or bfloat16, got ", dtype_name(int32_t(m.dtype())));
    std::vector<int64_t> full(batch);
    full.push_back(L);
    full.push_back(S);
    check_broadcastable(kOp, m, "attn_mask", full);
    // A mask with fewer than 2 dimensions is [S] or a scalar: give it the two matrix dimensions first.
    Tensor m2 = m;
    if (m.dim() < 2) {
      std::vector<int64_t> s(size_t(2 - m.dim()), 1), st(size_t(2 - m.dim()), 0);
      s.insert(s.end(), m.sizes().begin(), m.sizes().end());
      st.insert(st.end(), m.strides().begin(), m.strides().end());
      m2 = m.view(s, st, m.storage_offset());
    }
    // broadcast its matrix dimensions too (as_4d keeps them as they are)
    std::vector<int64_t> ms(m2.sizes()), mst(m2.strides());
    if (ms.end()[-2] == 1) ms.end()[-2] = L, mst.end()[-2] = 0;
    if (ms.end()[-1] == 1) ms.end()[-1] = S, mst.end()[-1] = 0;
    m4 = as_4d(m2.view(ms, mst, m2.storage_offset()), batch);
  }

  std::vector<int64_t> out_sizes(batch), attn_sizes(batch);
  out_sizes.push_back(L);
  out_sizes.push_back(Ev);
  attn_sizes.push_back(L);
  attn_sizes.push_back(S);
  Tensor out = empty_tensor(out_sizes, query.dtype());
  Tensor attn = empty_tensor(attn_sizes, query.dtype());
  const int64_t B = q4.sizes()[0], H = q4.sizes()[1];
  const Tensor out4 = out.view({B, H, L, Ev}, contiguous_strides({B, H, L, Ev}), 0);
  const Tensor attn4 = attn.view({B, H, L, S}, contiguous_strides({B, H, L, S}), 0);
  AttentionParams p;
  p.scale = scale ? *scale : 1.0 / std::sqrt(double(E));
  p.causal = is_causal;
  p.gqa_factor = gqa;
  if (out.numel() > 0 || attn.numel() > 0)
    op_backend().attention(q4, k4, v4, m4 ? &*m4 : nullptr, out4, attn4, p);
  return {out, attn};
}

}  // namespace mps_shim::ops
