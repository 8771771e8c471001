// Binary searches on the CPU, one value per work item, spread over cores.
// The comparisons are ATen's (`!(x >= v)` and `!(x > v)`), so NaN values land
// at the end of their row.
#include <atomic>
#include <type_traits>

#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"
#include "ops/op_checks.h"

namespace mps_shim::host {

namespace {

template <typename V>
V load_value(DType t, const char* p) {
  if constexpr (std::is_same_v<V, double>)
    return load_double(t, p);
  else
    return load_int(t, p);
}

template <typename V>
void search(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
            const std::optional<Tensor>& sorter) {
  const int64_t nd = values.dim();
  const int64_t n = sorted.sizes().back();
  const int64_t seq_step = sorted.strides().back();
  const bool one_row = sorted.dim() == 1;
  // Walk values and out; each value's row of `sorted` (and of sorter) follows its leading coordinates.
  std::vector<int64_t> row_strides(size_t(nd), 0), sorter_strides(size_t(nd), 0);
  if (!one_row) {
    for (int64_t d = 0; d + 1 < nd; ++d) {
      row_strides[size_t(d)] = sorted.strides()[size_t(d)];
      if (sorter) sorter_strides[size_t(d)] = sorter->strides()[size_t(d)];
    }
  }
  const StridedWalk<4> walk(values.sizes(), {values.strides(), out.strides(), row_strides, sorter_strides});
  const DType st = sorted.dtype(), vt = values.dtype(), ot = out.dtype();
  const int64_t sel = int64_t(sorted.element_size()), vel = int64_t(values.element_size()),
                oel = int64_t(out.element_size());
  const char* seq = sorted.data();
  const char* val = values.data();
  char* o = out.data();
  const int64_t* srt = sorter ? reinterpret_cast<const int64_t*>(sorter->data()) : nullptr;
  const int64_t srt_step = sorter ? sorter->strides().back() : 0;
  std::atomic<bool> bad_sorter{false};
  parallel_range(values.numel(), 4096, [&](int64_t b, int64_t e) {
    walk.run(b, e, [&](const std::array<int64_t, 4>& off) {
      const V v = load_value<V>(vt, val + off[0] * vel);
      const char* row = seq + off[2] * sel;
      const int64_t* order = srt ? srt + off[3] : nullptr;
      int64_t lo = 0, hi = n;
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        const int64_t at = order ? order[mid * srt_step] : mid;
        if (at < 0 || at >= n) {
          bad_sorter = true;
          break;
        }
        const V x = load_value<V>(st, row + at * seq_step * sel);
        if (right ? !(x > v) : !(x >= v))
          lo = mid + 1;
        else
          hi = mid;
      }
      if (ot == DType::Int32)
        store_as<int32_t>(o + off[1] * oel, int32_t(lo));
      else
        store_as<int64_t>(o + off[1] * oel, lo);
    });
  });
  if (bad_sorter) ops::op_fail("searchsorted", "sorter index out of range");
}

}  // namespace

void HostOps::searchsorted(const Tensor& sorted, const Tensor& values, const Tensor& out, bool right,
                           const std::optional<Tensor>& sorter) {
  if (!is_float_dtype(sorted.dtype()) && !is_float_dtype(values.dtype()))
    search<int64_t>(sorted, values, out, right, sorter);
  else
    search<double>(sorted, values, out, right, sorter);
}

}  // namespace mps_shim::host
