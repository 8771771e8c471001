#include "backends/cuda/cuda_ops.h"

#include <algorithm>
#include <climits>
#include <mutex>

#include "backends/cuda/cuda_api.h"
#include "backends/cuda/cuda_device.h"
#include "backends/host/ops/host_ops.h"
#include "ops/staged_ops.h"

namespace mps_shim::cuda {

namespace {

// cudaDataType_t, cublasComputeType_t, cublasOperation_t, cublasGemmAlgo_t.
constexpr int kR32F = 0, kR64F = 1, kR16F = 2, kR16BF = 14;
constexpr int kCompute32F = 68, kCompute64F = 70;
constexpr int kOpN = 0, kOpT = 1, kGemmDefault = -1;

// One operand of a column-major product: a rows x cols matrix whose element
// (r, c) is at r * row_stride + c * col_stride elements, as cuBLAS takes it.
struct Operand {
  int op = kOpN;
  int ld = 0;
  bool ok = false;
};

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

Operand operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const bool one_row = rows == 1, one_col = cols == 1;  // a size-1 dimension's stride is never stepped
  if ((row_stride == 1 || one_row) && (one_col || col_stride >= rows)) {
    const int64_t ld = one_col ? std::max<int64_t>(rows, 1) : col_stride;
    return {kOpN, int(std::min<int64_t>(ld, INT_MAX)), fits_int(ld)};
  }
  if ((col_stride == 1 || one_col) && (one_row || row_stride >= cols)) {
    const int64_t ld = one_row ? std::max<int64_t>(cols, 1) : row_stride;
    return {kOpT, int(std::min<int64_t>(ld, INT_MAX)), fits_int(ld)};
  }
  return {};
}

int cuda_type(DType d) {
  switch (d) {
    case DType::Float32: return kR32F;
    case DType::Float64: return kR64F;
    case DType::Float16: return kR16F;
    case DType::BFloat16: return kR16BF;
    default: return -1;
  }
}

class CudaOps : public ops::StagedOps {
 public:
  CudaOps() : StagedOps(host::host_ops()) {}

  // cuBLAS where it takes the layout (one unit stride per matrix), else the host.
  void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) override {
    if (!cublas_gemm(a, b, c, alpha, beta)) StagedOps::gemm(a, b, c, alpha, beta);
  }

  std::string gemm_provider() override {
    std::string why;
    if (const CublasApi* api = cublas_api(&why)) return "cublas (" + api->path + ")";
    return StagedOps::gemm_provider() + " (" + why + ")";
  }

 private:
  cublasHandle_t handle(const CublasApi& api) {
    std::call_once(handle_once_, [&] {
      Device::instance().make_current();
      if (api.cublasCreate(&handle_) != 0) handle_ = nullptr;
    });
    return handle_;
  }

  bool cublas_gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, double beta) {
    const CublasApi* api = cublas_api(nullptr);
    const int type = cuda_type(c.dtype());
    if (!api || type < 0 || a.device() != DeviceType::MPS || b.device() != DeviceType::MPS ||
        c.device() != DeviceType::MPS)
      return false;
    const int64_t batch = c.sizes()[0], M = c.sizes()[1], N = c.sizes()[2], K = a.sizes()[2];
    if (batch == 0 || M == 0 || N == 0) return true;
    if (!fits_int(batch) || !fits_int(M) || !fits_int(N) || !fits_int(K)) return false;
    // cuBLAS is column-major: write the product so that C is its output
    // matrix as stored, either C = A B (C column-major) or C^T = B^T A^T.
    const auto& sa = a.strides();
    const auto& sb = b.strides();
    const auto& sc = c.strides();
    const bool c_rows = sc[2] == 1 || N == 1;
    const Operand out = c_rows ? operand(N, M, 1, sc[1]) : operand(M, N, sc[1], sc[2]);
    if (!out.ok || out.op != kOpN) return false;
    const Tensor& x = c_rows ? b : a;
    const Tensor& y = c_rows ? a : b;
    const int64_t m = c_rows ? N : M, n = c_rows ? M : N;
    // x: m x K, y: K x n, both as column-major operands.
    const Operand ox = c_rows ? operand(m, K, sb[2], sb[1]) : operand(m, K, sa[1], sa[2]);
    const Operand oy = c_rows ? operand(K, n, sa[2], sa[1]) : operand(K, n, sb[1], sb[2]);
    if (!ox.ok || !oy.ok) return false;
    cublasHandle_t h = handle(*api);
    if (!h) return false;
    const bool f64 = c.dtype() == DType::Float64;
    const float alpha32 = float(alpha), beta32 = float(beta);
    Device::instance().make_current();
    const int status = api->cublasGemmStridedBatchedEx(
        h, ox.op, oy.op, int(m), int(n), int(K), f64 ? static_cast<const void*>(&alpha) : &alpha32, x.data(), type,
        ox.ld, x.sizes()[0] == 1 ? 0 : x.strides()[0], y.data(), type, oy.ld, y.sizes()[0] == 1 ? 0 : y.strides()[0],
        f64 ? static_cast<const void*>(&beta) : &beta32, c.data(), type, out.ld, batch == 1 ? 0 : sc[0], int(batch),
        f64 ? kCompute64F : kCompute32F, kGemmDefault);
    MPS_SHIM_CHECK_AS(EngineError, status == 0, "cublasGemmStridedBatchedEx failed (status ", status, ") on [",
                      batch, ", ", M, ", ", K, "] x [", batch, ", ", K, ", ", N, "]");
    return true;
  }

  std::once_flag handle_once_;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace

ops::OpBackend& cuda_ops() {
  static CudaOps* ops = new CudaOps();  // never destroyed: models may run ops from static destructors
  return *ops;
}

}  // namespace mps_shim::cuda
