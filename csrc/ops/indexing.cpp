// Advanced indexing (index.Tensor, index_put), nonzero, nonzero_static and
// masked_select.
//
// Indices are lowered as ATen lowers them: boolean masks become the long
// indices of their nonzero elements, the index tensors broadcast to one shape
// B, and when the indexed dimensions are not adjacent they move to the front.
// The iteration shape is then before + B + after, the indexed tensor is
// restrided over it (stride 0 across B), and each index tensor is viewed in
// it; the backend adds idx * stride per indexed dimension.
#include <numeric>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

// `t` broadcast to `shape` (trailing alignment) as a stride-0 view.
Tensor expand_to(const Tensor& t, const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 0);
  const size_t lead = shape.size() - size_t(t.dim());
  for (size_t i = 0; i < size_t(t.dim()); ++i)
    strides[lead + i] = t.sizes()[i] == 1 && shape[lead + i] != 1 ? 0 : t.strides()[i];
  return t.view(shape, strides, t.storage_offset());
}

bool broadcast_shapes(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>& out) {
  const size_t n = std::max(a.size(), b.size());
  out.assign(n, 1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (x != y && x != 1 && y != 1) return false;
    out[i] = x == 1 ? y : x;
  }
  return true;
}

// The coordinates of mask's nonzero elements, [n, mask.dim()] int64.
Tensor nonzero_coords(const Tensor& mask) {
  const int64_t n = op_backend().count_nonzero(mask);
  Tensor out = empty_tensor({n, mask.dim()}, DType::Int64);
  if (n != 0 && mask.dim() != 0) op_backend().nonzero(mask, out, 0);
  return out;
}

struct Lowered {
  std::optional<Tensor> restrided;    // the indexed tensor over the iteration shape
  IndexSpec spec;
  std::vector<int64_t> shape;         // the iteration shape: the result of index
};

Lowered lower(const char* op, const Tensor& self, const std::vector<std::optional<Tensor>>& given) {
  // 1. Masks become long indices; count the dimensions consumed.
  std::vector<std::optional<Tensor>> idx;
  std::vector<int64_t> user_dim;  // the user's dimension each entry indexes
  int64_t pos = 0;
  for (size_t i = 0; i < given.size(); ++i) {
    if (!given[i]) {
      idx.push_back(std::nullopt);
      user_dim.push_back(pos++);
      continue;
    }
    const Tensor& t = *given[i];
    check_device(op, t, "indices");
    const DType d = t.dtype();
    if (d == DType::Bool || d == DType::UInt8) {
      MPS_SHIM_OP_CHECK(t.dim() > 0, op, "0-d boolean indices are not supported");
      MPS_SHIM_OP_CHECK(pos + t.dim() <= self.dim(), op, "too many indices for tensor of dimension ", self.dim());
      for (int64_t j = 0; j < t.dim(); ++j)
        MPS_SHIM_OP_CHECK(t.sizes()[size_t(j)] == self.sizes()[size_t(pos + j)], op, "the shape of the mask ",
                          shape_str(t.sizes()), " at index ", j, " does not match the shape of the indexed tensor ",
                          shape_str(self.sizes()), " at index ", pos + j);
      const Tensor coords = nonzero_coords(t);
      const int64_t n = coords.sizes()[0];
      for (int64_t j = 0; j < t.dim(); ++j) {
        idx.push_back(coords.view({n}, {t.dim()}, coords.storage_offset() + j));
        user_dim.push_back(pos++);
      }
      continue;
    }
    MPS_SHIM_OP_CHECK(d == DType::Int64 || d == DType::Int32, op,
                      "tensors used as indices must be long, int, byte or bool tensors, got ",
                      dtype_name(int32_t(d)));
    idx.push_back(t);
    user_dim.push_back(pos++);
  }
  MPS_SHIM_OP_CHECK(pos <= self.dim(), op, "too many indices for tensor of dimension ", self.dim(), " (got ", pos, ")");
  while (int64_t(idx.size()) < self.dim()) {
    idx.push_back(std::nullopt);
    user_dim.push_back(pos++);
  }

  // 2. Broadcast the index tensors together.
  std::vector<int64_t> b;
  bool first = true;
  std::string shapes;
  for (const auto& t : idx)
    if (t) shapes += concat(shapes.empty() ? "" : ", ", shape_str(t->sizes()));
  for (const auto& t : idx) {
    if (!t) continue;
    if (first) {
      b = t->sizes();
      first = false;
    } else {
      std::vector<int64_t> merged;
      MPS_SHIM_OP_CHECK(broadcast_shapes(b, t->sizes(), merged), op,
                        "shape mismatch: indexing tensors could not be broadcast together with shapes ", shapes);
      b = merged;
    }
  }

  // 3. Indexed dimensions not adjacent: they go first.
  std::vector<size_t> order(idx.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<size_t> defined;
  for (size_t i = 0; i < idx.size(); ++i)
    if (idx[i]) defined.push_back(i);
  if (!defined.empty() && defined.back() - defined.front() + 1 != defined.size()) {
    order = defined;
    for (size_t i = 0; i < idx.size(); ++i)
      if (!idx[i]) order.push_back(i);
  }

  // 4. The iteration shape and the restrided views.
  Lowered l;
  std::vector<int64_t> strides;
  size_t b_at = 0;  // where B sits in the iteration shape
  bool placed = false;
  for (size_t j = 0; j < order.size(); ++j) {
    const size_t i = order[j];
    if (idx[i]) {
      if (!placed) {
        b_at = l.shape.size();
        l.shape.insert(l.shape.end(), b.begin(), b.end());
        strides.insert(strides.end(), b.size(), 0);
        placed = true;
      }
      l.spec.sizes.push_back(self.sizes()[i]);
      l.spec.strides.push_back(self.strides()[i]);
      l.spec.dims.push_back(user_dim[i]);
    } else {
      l.shape.push_back(self.sizes()[i]);
      strides.push_back(self.strides()[i]);
    }
  }
  l.restrided = self.view(l.shape, strides, self.storage_offset());
  for (size_t j = 0; j < order.size(); ++j) {
    const size_t i = order[j];
    if (!idx[i]) continue;
    const Tensor e = expand_to(*idx[i], b);
    std::vector<int64_t> st(l.shape.size(), 0);
    for (size_t k = 0; k < b.size(); ++k) st[b_at + k] = e.strides()[k];
    l.spec.indices.push_back(e.view(l.shape, st, e.storage_offset()));
  }
  return l;
}

// self.clone(MemoryFormat::Preserve), as ATen's functional index_put starts.
Tensor preserving_copy(const Tensor& t) {
  Tensor out = empty_preserving(t, t.dtype());
  if (out.numel() != 0) copy_into(out, t);
  return out;
}

}  // namespace

Tensor index(const Tensor& self, const std::vector<std::optional<Tensor>>& indices) {
  const char* op = "index";
  check_device(op, self, "self");
  const Lowered l = lower(op, self, indices);
  Tensor out = empty_tensor(l.shape, self.dtype());
  if (out.numel() != 0) op_backend().index(*l.restrided, l.spec, out);
  return out;
}

Tensor index_put(const Tensor& self, const std::vector<std::optional<Tensor>>& indices, const Tensor& values,
                 bool accumulate) {
  const char* op = "index_put";
  check_device(op, self, "self");
  check_device(op, values, "values");
  MPS_SHIM_OP_CHECK(self.dtype() == values.dtype(), op,
                    "index put requires the source and destination dtypes match, got ",
                    dtype_name(int32_t(self.dtype())), " for the destination and ", dtype_name(int32_t(values.dtype())),
                    " for the source");
  Tensor out = preserving_copy(self);
  const Lowered l = lower(op, out, indices);
  // Leading size-1 dimensions of values beyond the result's rank are dropped, as ATen's copy does.
  Tensor v = values;
  while (v.dim() > int64_t(l.shape.size()) && v.sizes()[0] == 1) {
    v = v.view(std::vector<int64_t>(v.sizes().begin() + 1, v.sizes().end()),
               std::vector<int64_t>(v.strides().begin() + 1, v.strides().end()), v.storage_offset());
  }
  MPS_SHIM_OP_CHECK(v.dim() <= int64_t(l.shape.size()), op, "shape mismatch: value tensor of shape ",
                    shape_str(values.sizes()), " cannot be broadcast to indexing result of shape ", shape_str(l.shape));
  bool ok = true;
  for (int64_t i = 0; i < v.dim(); ++i) {
    const int64_t s = v.sizes()[size_t(i)], t = l.shape[l.shape.size() - size_t(v.dim()) + size_t(i)];
    ok = ok && (s == t || s == 1);
  }
  MPS_SHIM_OP_CHECK(ok, op, "shape mismatch: value tensor of shape ", shape_str(values.sizes()),
                    " cannot be broadcast to indexing result of shape ", shape_str(l.shape));
  int64_t n = 1;
  for (int64_t s : l.shape) n *= s;
  if (n == 0) return out;
  op_backend().index_put(*l.restrided, l.spec, expand_to(v, l.shape), accumulate);
  return out;
}

Tensor nonzero(const Tensor& self) {
  check_device("nonzero", self, "self");
  return nonzero_coords(self);
}

Tensor nonzero_static(const Tensor& self, int64_t size, int64_t fill_value) {
  const char* op = "nonzero_static";
  check_device(op, self, "self");
  MPS_SHIM_OP_CHECK(size >= 0, op, "'size' must be a non-negative integer, got ", size);
  Tensor out = empty_tensor({size, self.dim()}, DType::Int64);
  if (out.numel() != 0) op_backend().nonzero(self, out, fill_value);
  return out;
}

Tensor masked_select(const Tensor& self, const Tensor& mask) {
  const char* op = "masked_select";
  check_device(op, self, "self");
  check_device(op, mask, "mask");
  MPS_SHIM_OP_CHECK(mask.dtype() == DType::Bool, op, "expected mask to be a bool tensor, got ",
                    dtype_name(int32_t(mask.dtype())));
  std::vector<int64_t> shape;
  MPS_SHIM_OP_CHECK(broadcast_shapes(self.sizes(), mask.sizes(), shape), op, "the size of mask ",
                    shape_str(mask.sizes()), " must match the size of self ", shape_str(self.sizes()));
  if (shape.empty()) {  // both 0-d: one element, selected or not
    const Tensor s = self.view({1}, {0}, self.storage_offset()), m = mask.view({1}, {0}, mask.storage_offset());
    return index(s, {m});
  }
  return index(expand_to(self, shape), {expand_to(mask, shape)});
}

}  // namespace mps_shim::ops
