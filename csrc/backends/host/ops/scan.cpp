// Cumulative sums and products on the CPU: self goes to out's dtype, then to
// a contiguous float64 or int64 buffer [outer, n, inner] that is scanned in
// place, lines spread over cores, and goes back to out rounded once.
#include <algorithm>

#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"

namespace mps_shim::host {

namespace {

template <typename T>
void scan_lines(T* data, int64_t outer, int64_t n, int64_t inner, ops::ScanOp op) {
  // Work items: (outer index, block of `inner`); each walks its block down the scan dimension.
  const int64_t block = 256;
  const int64_t blocks = (inner + block - 1) / block;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * std::min(inner, block)));
  parallel_range(outer * blocks, grain, [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t o = w / blocks, j0 = (w % blocks) * block, j1 = std::min(inner, j0 + block);
      T* base = data + o * n * inner;
      for (int64_t i = 1; i < n; ++i) {
        T* row = base + i * inner;
        const T* prev = row - inner;
        if (op == ops::ScanOp::Sum) {
          for (int64_t j = j0; j < j1; ++j) row[j] += prev[j];
        } else {
          for (int64_t j = j0; j < j1; ++j) row[j] *= prev[j];
        }
      }
    }
  });
}

// Integers wrap like ATen's: add and multiply as unsigned.
void scan_ints(int64_t* data, int64_t outer, int64_t n, int64_t inner, ops::ScanOp op) {
  scan_lines(reinterpret_cast<uint64_t*>(data), outer, n, inner, op);
}

}  // namespace

void HostOps::scan(const Tensor& self, const Tensor& out, int64_t dim, ops::ScanOp op) {
  const DType dt = out.dtype();
  const bool floating = is_float_dtype(dt);
  // self.to(dtype) first: values are rounded to out's type before they accumulate.
  Tensor converted = self;
  if (self.dtype() != dt) {
    converted = empty_tensor(self.sizes(), dt, DeviceType::CPU);
    copy_into(converted, self);
  }
  Tensor acc = empty_tensor(self.sizes(), floating ? DType::Float64 : DType::Int64, DeviceType::CPU);
  copy_into(acc, converted);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= self.sizes()[size_t(d)];
  for (int64_t d = dim + 1; d < self.dim(); ++d) inner *= self.sizes()[size_t(d)];
  const int64_t n = self.sizes()[size_t(dim)];
  if (floating)
    scan_lines(reinterpret_cast<double*>(acc.data()), outer, n, inner, op);
  else
    scan_ints(reinterpret_cast<int64_t*>(acc.data()), outer, n, inner, op);
  copy_into(out, acc);
}

}  // namespace mps_shim::host
