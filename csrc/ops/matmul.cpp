// mm, addmm, bmm, baddbmm, addmv: shapes and dtypes as ATen checks them, then
// one batched GEMM on the backend.
#include "ops/op_backend.h"
#include "ops/op_checks.h"
#include "ops/ops.h"
#include "runtime/backend.h"

namespace mps_shim::ops {

namespace {

// A 2-D tensor as a batch of one: [1, rows, cols].
Tensor as_batch(const Tensor& m) {
  return m.view({1, m.sizes()[0], m.sizes()[1]}, {0, m.strides()[0], m.strides()[1]}, m.storage_offset());
}

void check_operand(const char* op, const Tensor& t, const char* name, int64_t dim) {
  check_device(op, t, name);
  check_dim(op, t, name, dim);
  check_product_dtype(op, t, name);
}

Tensor as_column_batch(const Tensor& v) {
  return v.view({1, v.sizes()[0], 1}, {0, v.strides()[0], 1}, v.storage_offset());
}

Tensor as_itself(const Tensor& t) { return t; }

// out = alpha * a @ b + beta * base (base broadcast to out; absent or beta == 0 means 0).
// a [B,M,K] and b [B,K,N]; as3 views out (and any tensor of its shape) as [B,M,N].
void product_into(Tensor& out, Tensor (*as3)(const Tensor&), const Tensor& a, const Tensor& b, const Tensor* base,
                  double beta, double alpha) {
  const bool use_base = base != nullptr && beta != 0;
  // An output that shares memory with a factor gets the result through a private buffer.
  const bool alias = tensors_overlap(out, a) || tensors_overlap(out, b);
  const Tensor target = alias ? empty_tensor(out.sizes(), out.dtype(), DeviceType::CPU) : out;
  if (use_base) copy_into(target, *base);
  op_backend().gemm(a, b, as3(target), alpha, use_base ? beta : 0.0);
  if (alias) copy_into(out, target);
}

// Checks `self` against the product's shape, fits `out` to it and computes out = beta*self + alpha*(f1 @ f2).
void finish_product(const char* op, Tensor& out, const Tensor* self, const Tensor& f1, const char* f1_name,
                    const Tensor& f2, const std::vector<int64_t>& shape, Tensor (*as3)(const Tensor&), double beta,
                    double alpha) {
  if (self) {
    check_device(op, *self, "self");
    check_same_dtype(op, *self, "self", f1, f1_name);
    check_broadcastable(op, *self, "self", shape);
  }
  resize_out(op, out, "out", shape, f1.dtype());
  if (out.numel() == 0) return;
  product_into(out, as3, as3(f1), as3(f2), self, beta, alpha);
}

void matrix_product(const char* op, Tensor& out, const Tensor* self, const Tensor& m1, const Tensor& m2, double beta,
                    double alpha) {
  check_operand(op, m1, "mat1", 2);
  check_operand(op, m2, "mat2", 2);
  check_same_dtype(op, m1, "mat1", m2, "mat2");
  MPS_SHIM_OP_CHECK(m1.sizes()[1] == m2.sizes()[0], op, "mat1 and mat2 shapes cannot be multiplied (",
                    m1.sizes()[0], "x", m1.sizes()[1], " and ", m2.sizes()[0], "x", m2.sizes()[1], ")");
  finish_product(op, out, self, m1, "mat1", m2, {m1.sizes()[0], m2.sizes()[1]}, as_batch, beta, alpha);
}

void batched_product(const char* op, Tensor& out, const Tensor* self, const Tensor& b1, const Tensor& b2, double beta,
                     double alpha) {
  check_operand(op, b1, "batch1", 3);
  check_operand(op, b2, "batch2", 3);
  check_same_dtype(op, b1, "batch1", b2, "batch2");
  MPS_SHIM_OP_CHECK(b1.sizes()[0] == b2.sizes()[0], op, "batch1 and batch2 must have the same batch size, got ",
                    b1.sizes()[0], " and ", b2.sizes()[0]);
  MPS_SHIM_OP_CHECK(b1.sizes()[2] == b2.sizes()[1], op, "batch1 and batch2 shapes cannot be multiplied (",
                    shape_str(b1.sizes()), " and ", shape_str(b2.sizes()), ")");
  finish_product(op, out, self, b1, "batch1", b2, {b1.sizes()[0], b1.sizes()[1], b2.sizes()[2]}, as_itself, beta,
                 alpha);
}

}  // namespace

void mm_out(Tensor& out, const Tensor& self, const Tensor& mat2) {
  matrix_product("mm", out, nullptr, self, mat2, 0.0, 1.0);
}

void addmm_out(Tensor& out, const Tensor& self, const Tensor& mat1, const Tensor& mat2, double beta, double alpha) {
  matrix_product("addmm", out, &self, mat1, mat2, beta, alpha);
}

void bmm_out(Tensor& out, const Tensor& self, const Tensor& mat2) {
  batched_product("bmm", out, nullptr, self, mat2, 0.0, 1.0);
}

void baddbmm_out(Tensor& out, const Tensor& self, const Tensor& batch1, const Tensor& batch2, double beta,
                 double alpha) {
  batched_product("baddbmm", out, &self, batch1, batch2, beta, alpha);
}

Tensor addmv(const Tensor& self, const Tensor& mat, const Tensor& vec, double beta, double alpha) {
  const char* op = "addmv";
  check_operand(op, mat, "mat", 2);
  check_operand(op, vec, "vec", 1);
  check_device(op, self, "self");
  check_same_dtype(op, mat, "mat", vec, "vec");
  check_same_dtype(op, self, "self", mat, "mat");
  MPS_SHIM_OP_CHECK(mat.sizes()[1] == vec.sizes()[0], op, "size mismatch, got mat ", shape_str(mat.sizes()),
                    " and vec ", shape_str(vec.sizes()));
  const std::vector<int64_t> shape{mat.sizes()[0]};
  check_broadcastable(op, self, "self", shape);
  Tensor out = empty_tensor(shape, mat.dtype());
  if (out.numel() == 0) return out;
  product_into(out, as_column_batch, as_batch(mat), as_column_batch(vec), &self, beta, alpha);
  return out;
}

OpBackend& op_backend() { return backend().ops(); }

}  // namespace mps_shim::ops
