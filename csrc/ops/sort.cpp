// sort, sort_stable, topk: ATen's checks and result shapes, then one backend
// sort that writes the first k entries of every line. Every sort here is
// stable (ties keep index order), which ATen allows for the unstable forms.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

namespace mps_shim::ops {

namespace {

// A 0-d tensor sorts as one line of one element.
Tensor at_least_1d(const Tensor& t) { return t.dim() == 0 ? t.view({1}, {1}, t.storage_offset()) : t; }

std::pair<Tensor, Tensor> sorted_prefix(const Tensor& self, int64_t k, int64_t dim, bool descending, bool keep_layout) {
  const Tensor s = at_least_1d(self);
  std::vector<int64_t> shape = s.sizes();
  shape[size_t(dim)] = k;
  std::vector<int64_t> result_shape = self.dim() == 0 ? std::vector<int64_t>{} : shape;
  // sort keeps self's dense layout, as ATen's sort meta does; topk's results are contiguous.
  Tensor values = keep_layout ? empty_preserving(self, self.dtype()) : empty_tensor(result_shape, self.dtype());
  Tensor indices = keep_layout ? empty_preserving(self, DType::Int64) : empty_tensor(result_shape, DType::Int64);
  if (values.numel() != 0) op_backend().sort(s, at_least_1d(values), at_least_1d(indices), dim, descending);
  return {values, indices};
}

}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& self, const int32_t* stable, int64_t dim, bool descending) {
  const char* op = "sort";
  check_device(op, self, "self");
  const int64_t d = wrap_dim(op, dim, self.dim());
  (void)stable;  // always stable
  const int64_t n = self.dim() == 0 ? 1 : self.sizes()[size_t(d)];
  return sorted_prefix(self, n, d, descending, true);
}

std::pair<Tensor, Tensor> topk(const Tensor& self, int64_t k, int64_t dim, bool largest, bool sorted) {
  const char* op = "topk";
  check_device(op, self, "self");
  MPS_SHIM_OP_CHECK(self.dtype() != DType::Bool, op, "topk does not support bool dtypes, as in torch");
  const int64_t d = wrap_dim(op, dim, self.dim());
  const int64_t n = self.dim() == 0 ? 1 : self.sizes()[size_t(d)];
  MPS_SHIM_OP_CHECK(k >= 0 && k <= n, op, "selected index k out of range (k = ", k, ", dimension ", d, " has size ",
                    n, ")");
  (void)sorted;  // results always come sorted, which `sorted=False` allows
  return sorted_prefix(self, k, d, largest, false);
}

}  // namespace mps_shim::ops
