// A CBLAS found at run time: libmps_shim.so links no BLAS, so it loads and
// runs anywhere, and uses the fastest one it can find.
#pragma once

#include <string>

namespace mps_shim::host {

// CBLAS's enums, by value.
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };

struct Blas {
  using sgemm_t = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                           int lda, const float* b, int ldb, float beta, float* c, int ldc);
  using dgemm_t = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a,
                           int lda, const double* b, int ldb, double beta, double* c, int ldc);
  sgemm_t sgemm = nullptr;  // null when no BLAS was found
  dgemm_t dgemm = nullptr;
  std::string description;  // the library's path, or why none was found
};

// Search order: $MPS_SHIM_BLAS; scipy_openblas32's library installed beside
// this package; the system's OpenBLAS, then any libcblas/libblas.
const Blas& blas();

// blas().sgemm, or a plain-loop GEMM with its signature when no BLAS was found.
Blas::sgemm_t sgemm_fn();

}  // namespace mps_shim::host
