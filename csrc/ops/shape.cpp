// cat, fill_, repeat_interleave and pad: ops made of copies (copy_into) and,
// for the non-constant pad modes, one advanced-indexing gather.
#include <algorithm>
#include <cstring>

#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

// A 0-d float64 CPU tensor holding v, to broadcast with copy_into.
Tensor scalar_tensor(double v) {
  Tensor t = empty_tensor({}, DType::Float64, DeviceType::CPU);
  std::memcpy(t.data(), &v, sizeof v);
  return t;
}

// The view of t with dimension d narrowed to [start, start + length).
Tensor narrow(const Tensor& t, int64_t d, int64_t start, int64_t length) {
  std::vector<int64_t> sizes = t.sizes();
  sizes[size_t(d)] = length;
  return t.view(sizes, t.strides(), t.storage_offset() + start * t.strides()[size_t(d)]);
}

// A device int64 tensor with `values`, shaped `sizes` (written on the CPU, then copied).
Tensor int64_tensor(const std::vector<int64_t>& values, const std::vector<int64_t>& sizes) {
  Tensor host = empty_tensor(sizes, DType::Int64, DeviceType::CPU);
  if (!values.empty()) std::memcpy(host.data(), values.data(), values.size() * sizeof(int64_t));
  Tensor out = empty_tensor(sizes, DType::Int64);
  copy_into(out, host);
  return out;
}

std::vector<int64_t> read_int64(const Tensor& t) {
  Tensor host = empty_tensor(t.sizes(), DType::Int64, DeviceType::CPU);
  copy_into(host, t);
  const int64_t* p = reinterpret_cast<const int64_t*>(host.data());
  return std::vector<int64_t>(p, p + host.numel());
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  const char* op = "cat";
  MPS_SHIM_OP_CHECK(!tensors.empty(), op, "expected a non-empty list of Tensors");
  // 1-D empty tensors are skipped, as ATen's legacy rule has it.
  const Tensor* ref = nullptr;
  DType dtype = tensors[0].dtype();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    check_device(op, t, "tensors");
    MPS_SHIM_OP_CHECK(t.dim() > 0, op, "zero-dimensional tensor (at position ", i, ") cannot be concatenated");
    dtype = i == 0 ? t.dtype() : promote_types(dtype, t.dtype());
    if (!ref && !(t.dim() == 1 && t.sizes()[0] == 0)) ref = &t;
  }
  if (!ref) return empty_tensor({0}, dtype);
  const int64_t d = wrap_dim(op, dim, ref->dim());
  std::vector<int64_t> shape = ref->sizes();
  shape[size_t(d)] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.dim() == 1 && t.sizes()[0] == 0) continue;
    MPS_SHIM_OP_CHECK(t.dim() == ref->dim(), op, "tensors must have same number of dimensions: got ", ref->dim(),
                      " and ", t.dim());
    for (int64_t k = 0; k < t.dim(); ++k)
      MPS_SHIM_OP_CHECK(k == d || t.sizes()[size_t(k)] == ref->sizes()[size_t(k)], op, "sizes of tensors must match "
                        "except in dimension ", d, ". Expected size ", ref->sizes()[size_t(k)], " but got size ",
                        t.sizes()[size_t(k)], " for tensor number ", i, " in the list");
    shape[size_t(d)] += t.sizes()[size_t(d)];
  }
  Tensor out = empty_tensor(shape, dtype);
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    if (t.dim() == 1 && t.sizes()[0] == 0) continue;
    const int64_t n = t.sizes()[size_t(d)];
    if (n != 0 && t.numel() != 0) copy_into(narrow(out, d, at, n), t);
    at += n;
  }
  return out;
}

void fill_(Tensor& self, double value) {
  check_device("fill_", self, "self");
  if (self.numel() != 0) copy_into(self, scalar_tensor(value));
}

Tensor repeat_interleave(const Tensor& repeats, const int64_t* output_size) {
  const char* op = "repeat_interleave";
  check_device(op, repeats, "repeats");
  MPS_SHIM_OP_CHECK(repeats.dim() == 1, op, "repeat_interleave only accept 1D vector as repeat, got shape ",
                    shape_str(repeats.sizes()));
  MPS_SHIM_OP_CHECK(repeats.dtype() == DType::Int64 || repeats.dtype() == DType::Int32, op,
                    "repeats has to be Long or Int tensor, got ", dtype_name(int32_t(repeats.dtype())));
  const std::vector<int64_t> r = read_int64(repeats);
  int64_t total = 0;
  for (int64_t v : r) {
    MPS_SHIM_OP_CHECK(v >= 0, op, "repeats can not be negative");
    total += v;
  }
  MPS_SHIM_OP_CHECK(output_size == nullptr || *output_size == total, op,
                    "allocated size does not match required size (output_size ", output_size ? *output_size : 0,
                    ", repeats sum to ", total, ")");
  std::vector<int64_t> values;
  values.reserve(size_t(total));
  for (size_t i = 0; i < r.size(); ++i) values.insert(values.end(), size_t(r[i]), int64_t(i));
  Tensor out = int64_tensor(values, {total});
  if (repeats.dtype() == DType::Int32) {
    Tensor o32 = empty_tensor({total}, DType::Int32);
    copy_into(o32, out);
    return o32;
  }
  return out;
}

Tensor pad(const Tensor& self, const std::vector<int64_t>& pads, const char* mode, const double* value) {
  const char* op = "pad";
  check_device(op, self, "self");
  const std::string m = mode ? mode : "constant";
  MPS_SHIM_OP_CHECK(m == "constant" || m == "reflect" || m == "replicate" || m == "circular", op,
                    "unrecognised padding mode ", m);
  MPS_SHIM_OP_CHECK(pads.size() % 2 == 0, op, "Padding length must be divisible by 2");
  const int64_t np = int64_t(pads.size()) / 2, nd = self.dim();
  MPS_SHIM_OP_CHECK(np <= nd, op, "Padding length should be less than or equal to two times the input dimension "
                    "but got padding length ", pads.size(), " and input of dimension ", nd);
  // pads = (last dim left, last dim right, second-to-last left, ...).
  std::vector<int64_t> shape = self.sizes();
  for (int64_t k = 0; k < np; ++k) {
    const int64_t d = nd - 1 - k, l = pads[size_t(2 * k)], r = pads[size_t(2 * k + 1)];
    const int64_t n = self.sizes()[size_t(d)];
    MPS_SHIM_OP_CHECK(n + l + r >= 0, op, "The input size ", n, ", plus negative padding ", l, " and ", r,
                      " resulted in a negative output size, which is invalid. Check dimension ", d,
                      " of your input.");
    if (m == "reflect")
      MPS_SHIM_OP_CHECK(l < n && r < n, op, "padding size should be less than the corresponding input dimension, "
                        "but got: padding (", l, ", ", r, ") at dimension ", d, " of input ", shape_str(self.sizes()));
    if (m == "circular")
      MPS_SHIM_OP_CHECK(l <= n && r <= n, op, "padding value causes wrapping around more than once (padding (", l,
                        ", ", r, ") at dimension ", d, " of input ", shape_str(self.sizes()), ")");
    if (m == "circular")
      MPS_SHIM_OP_CHECK(n + std::min<int64_t>(l, 0) + std::min<int64_t>(r, 0) > 0 || n + l + r == 0, op,
                        "negative padding (", l, ", ", r, ") leaves nothing of dimension ", d, " of input ",
                        shape_str(self.sizes()), " to wrap around");
    if (m != "constant")
      MPS_SHIM_OP_CHECK(n > 0 || n + l + r == 0, op, "expected a non-empty dimension ", d, " for ", m,
                        " padding, got input ", shape_str(self.sizes()));
    shape[size_t(d)] = n + l + r;
  }
  if (m != "constant") {
    MPS_SHIM_OP_CHECK(value == nullptr, op, "Padding mode \"", m, "\" doesn't take in value argument");
    MPS_SHIM_OP_CHECK(np >= 1 && np <= 3 && nd >= np + 1 && nd <= np + 2, op, "padding mode \"", m,
                      "\" takes a ", np + 1, "-D or ", np + 2, "-D input for ", np, "-D padding, got shape ",
                      shape_str(self.sizes()));
  }
  Tensor out = empty_tensor(shape, self.dtype());
  if (out.numel() == 0) return out;
  if (m == "constant") {
    copy_into(out, scalar_tensor(value ? *value : 0.0));
    Tensor src = self, dst = out;
    for (int64_t k = 0; k < np; ++k) {
      const int64_t d = nd - 1 - k, l = pads[size_t(2 * k)], r = pads[size_t(2 * k + 1)];
      const int64_t n = self.sizes()[size_t(d)];
      const int64_t from = l < 0 ? -l : 0, to = r < 0 ? n + r : n;  // input range kept
      if (to <= from) return out;
      src = narrow(src, d, from, to - from);
      dst = narrow(dst, d, l > 0 ? l : 0, to - from);
    }
    copy_into(dst, src);
    return out;
  }
  // reflect / replicate / circular: out = self[..., idx_0, idx_1, ...] over the padded dimensions.
  std::vector<std::optional<Tensor>> indices(size_t(nd - np));
  for (int64_t d = nd - np; d < nd; ++d) {
    const int64_t k = nd - 1 - d, l = pads[size_t(2 * k)], n = self.sizes()[size_t(d)], len = shape[size_t(d)];
    std::vector<int64_t> map(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) {
      int64_t j = i - l;
      if (m == "replicate") {
        j = j < 0 ? 0 : j >= n ? n - 1 : j;
      } else if (m == "reflect") {
        if (j < 0) j = -j;
        if (j >= n) j = 2 * (n - 1) - j;
      } else {  // circular wraps within what negative pads leave, as ATen crops first
        const int64_t from = l < 0 ? -l : 0, r = pads[size_t(2 * k + 1)], kept = n - from - (r < 0 ? -r : 0);
        j = from + (((i - (l > 0 ? l : 0)) % kept) + kept) % kept;
      }
      map[size_t(i)] = j;
    }
    std::vector<int64_t> sizes(size_t(nd - d), 1);
    sizes[0] = len;
    indices.push_back(int64_tensor(map, sizes));
  }
  return index(self, indices);
}

}  // namespace mps_shim::ops
