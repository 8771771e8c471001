// Batched GEMM on the CPU: float32 and float64 views go to BLAS as they are
// when their strides allow it; other dtypes and layouts go through float32
// (half, bfloat) or float64 (integers) copies, as ATen accumulates.
#include <algorithm>
#include <climits>
#include <cstring>

#include "backends/host/ops/blas.h"
#include "backends/host/ops/host_ops.h"
#include "backends/host/ops/host_util.h"
#include "util/error.h"

namespace mps_shim::host {

namespace {

// How BLAS can read a [rows, cols] view with element strides (rs, cs).
struct Layout {
  bool ok = false;
  bool transposed = false;
  int ld = 0;
};

Layout blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const int64_t row_ld = rows <= 1 ? std::max<int64_t>(cols, 1) : rs;
  if ((cols <= 1 || cs == 1) && row_ld >= std::max<int64_t>(cols, 1) && row_ld <= INT_MAX) return {true, false, int(row_ld)};
  const int64_t col_ld = cols <= 1 ? std::max<int64_t>(rows, 1) : cs;
  if ((rows <= 1 || rs == 1) && col_ld >= std::max<int64_t>(rows, 1) && col_ld <= INT_MAX) return {true, true, int(col_ld)};
  return {};
}

Layout matrix_layout(const Tensor& t) {
  return blas_layout(t.sizes()[1], t.sizes()[2], t.strides()[1], t.strides()[2]);
}

template <typename T>
using GemmFn = void (*)(int, int, int, int, int, int, T, const T*, int, const T*, int, T, T*, int);

// Row-major C[m,n] = alpha * op(A) op(B) + beta * C without BLAS: the fallback when none is installed.
template <typename T>
void builtin_gemm(int, int ta, int tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta,
                  T* c, int ldc) {
  std::vector<T> row(static_cast<size_t>(n));
  for (int i = 0; i < m; ++i) {
    std::fill(row.begin(), row.end(), T(0));
    for (int p = 0; p < k; ++p) {
      const T av = ta == kNoTrans ? a[size_t(i) * lda + p] : a[size_t(p) * lda + i];
      for (int j = 0; j < n; ++j) row[size_t(j)] += av * (tb == kNoTrans ? b[size_t(p) * ldb + j] : b[size_t(j) * ldb + p]);
    }
    T* ci = c + size_t(i) * ldc;
    for (int j = 0; j < n; ++j) ci[j] = alpha * row[size_t(j)] + (beta == T(0) ? T(0) : beta * ci[j]);
  }
}

template <typename T>
GemmFn<T> gemm_fn();
template <>
GemmFn<float> gemm_fn<float>() { return blas().sgemm ? blas().sgemm : builtin_gemm<float>; }
template <>
GemmFn<double> gemm_fn<double>() { return blas().dgemm ? blas().dgemm : builtin_gemm<double>; }

template <typename T>
const T* element(const Tensor& t, int64_t batch) {
  return reinterpret_cast<const T*>(t.data()) + batch * t.strides()[0];
}

// All three views already have BLAS layouts; c is not transposed.
template <typename T>
void gemm_direct(const Tensor& a, const Tensor& b, const Tensor& c, T alpha, T beta) {
  const Layout la = matrix_layout(a), lb = matrix_layout(b), lc = matrix_layout(c);
  const int m = int(c.sizes()[1]), n = int(c.sizes()[2]), k = int(a.sizes()[2]);
  const GemmFn<T> fn = gemm_fn<T>();
  for (int64_t i = 0; i < c.sizes()[0]; ++i) {
    T* ci = const_cast<T*>(element<T>(c, i));
    if (beta == T(0)) {  // BLAS may compute 0 * NaN for uninitialised memory
      for (int r = 0; r < m; ++r) std::fill(ci + size_t(r) * lc.ld, ci + size_t(r) * lc.ld + n, T(0));
    }
    fn(kRowMajor, la.transposed ? kTrans : kNoTrans, lb.transposed ? kTrans : kNoTrans, m, n, k, alpha,
       element<T>(a, i), la.ld, element<T>(b, i), lb.ld, beta, ci, lc.ld);
  }
}

Tensor transpose12(const Tensor& t) {
  return t.view({t.sizes()[0], t.sizes()[2], t.sizes()[1]}, {t.strides()[0], t.strides()[2], t.strides()[1]},
                t.storage_offset());
}

bool blas_ready(const Tensor& t, DType compute) { return t.dtype() == compute && matrix_layout(t).ok; }

template <typename T>
void gemm_as(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta, DType compute) {
  const Tensor a2 = blas_ready(a, compute) ? a : contiguous_as(a, compute);
  const Tensor b2 = blas_ready(b, compute) ? b : contiguous_as(b, compute);
  if (blas_ready(c, compute)) {
    if (!matrix_layout(c).transposed) return gemm_direct<T>(a2, b2, c, T(alpha), T(beta));
    // C^T = B^T A^T keeps a column-major C in place.
    return gemm_direct<T>(transpose12(b2), transpose12(a2), transpose12(c), T(alpha), T(beta));
  }
  Tensor c2 = beta != 0 ? contiguous_as(c, compute) : empty_tensor(c.sizes(), compute, DeviceType::CPU);
  gemm_direct<T>(a2, b2, c2, T(alpha), T(beta));
  copy_into(c, c2);
}

}  // namespace

void HostOps::gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) {
  if (c.numel() == 0) return;
  MPS_SHIM_CHECK(a.sizes()[2] <= INT_MAX && c.sizes()[1] <= INT_MAX && c.sizes()[2] <= INT_MAX,
                 "gemm: a matrix dimension exceeds 2^31-1");
  const DType d = c.dtype();
  const bool single = d == DType::Float32 || d == DType::Float16 || d == DType::BFloat16;
  if (a.sizes()[2] == 0) {  // empty sum: c = beta * c
    Tensor c2 = empty_tensor(c.sizes(), DType::Float64, DeviceType::CPU);
    if (beta != 0) copy_into(c2, c);
    double* p = reinterpret_cast<double*>(c2.data());
    for (int64_t i = 0; i < c2.numel(); ++i) p[i] = beta != 0 ? beta * p[i] : 0.0;
    return copy_into(c, c2);
  }
  if (single) return gemm_as<float>(a, b, c, alpha, beta, DType::Float32);
  gemm_as<double>(a, b, c, alpha, beta, DType::Float64);
}

Blas::sgemm_t sgemm_fn() { return gemm_fn<float>(); }

std::string HostOps::gemm_provider() {
  return blas().sgemm ? concat("cblas: ", blas().description)
                      : concat("builtin loops (no BLAS: ", blas().description, ")");
}

HostOps& host_ops() {
  static HostOps* instance = new HostOps();
  return *instance;
}

}  // namespace mps_shim::host
