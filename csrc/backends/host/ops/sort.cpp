// Sorting lines on the CPU, spread over cores: each line's keys go into a
// buffer of (key, index) pairs ordered by a total order (NaN above every
// number, ties by index), so std::sort and std::partial_sort are stable.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"

namespace mps_shim::host {

namespace {

template <typename K>
bool key_less(K a, K b) {
  if constexpr (std::is_floating_point_v<K>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

template <typename K>
K load_key(DType t, const char* p) {
  if constexpr (std::is_same_v<K, float>) {
    switch (t) {
      case DType::Float16: return half_bits_to_float(load_as<uint16_t>(p));
      case DType::BFloat16: return bfloat_bits_to_float(load_as<uint16_t>(p));
      default: return load_as<float>(p);
    }
  } else if constexpr (std::is_same_v<K, double>) {
    return load_as<double>(p);
  } else if constexpr (std::is_same_v<K, uint64_t>) {
    return load_as<uint64_t>(p);
  } else {
    return load_int(t, p);
  }
}

template <typename K>
void sort_lines(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) {
  const DType dt = self.dtype();
  const int64_t n = self.sizes()[size_t(dim)], k = values.sizes()[size_t(dim)];
  const size_t el = self.element_size();
  std::vector<int64_t> lines_shape = self.sizes();
  lines_shape[size_t(dim)] = 1;
  const StridedWalk<3> walk(lines_shape, {self.strides(), values.strides(), indices.strides()});
  const int64_t s_step = self.strides()[size_t(dim)], v_step = values.strides()[size_t(dim)],
                i_step = indices.strides()[size_t(dim)];
  const char* src = self.data();
  char* vdst = values.data();
  int64_t* idst = reinterpret_cast<int64_t*>(indices.data());
  int64_t lines = 1;
  for (int64_t s : lines_shape) lines *= s;
  using Entry = std::pair<K, int64_t>;
  auto before = [descending](const Entry& a, const Entry& b) {
    if (descending ? key_less(b.first, a.first) : key_less(a.first, b.first)) return true;
    if (descending ? key_less(a.first, b.first) : key_less(b.first, a.first)) return false;
    return a.second < b.second;
  };
  parallel_range(lines, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<Entry> buf(static_cast<size_t>(n));
    walk.run(b, e, [&](const std::array<int64_t, 3>& off) {
      const char* line = src + off[0] * int64_t(el);
      for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = {load_key<K>(dt, line + i * s_step * int64_t(el)), i};
      if (k < n)
        std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), before);
      else
        std::sort(buf.begin(), buf.end(), before);
      char* vline = vdst + off[1] * int64_t(el);
      int64_t* iline = idst + off[2];
      for (int64_t i = 0; i < k; ++i) {
        const int64_t from = buf[size_t(i)].second;
        std::memcpy(vline + i * v_step * int64_t(el), line + from * s_step * int64_t(el), el);
        iline[i * i_step] = from;
      }
    });
  });
}

}  // namespace

void HostOps::sort(const Tensor& self, const Tensor& values, const Tensor& indices, int64_t dim, bool descending) {
  switch (self.dtype()) {
    case DType::Float16: case DType::BFloat16: case DType::Float32:
      return sort_lines<float>(self, values, indices, dim, descending);
    case DType::Float64: return sort_lines<double>(self, values, indices, dim, descending);
    case DType::UInt64: return sort_lines<uint64_t>(self, values, indices, dim, descending);
    default: return sort_lines<int64_t>(self, values, indices, dim, descending);
  }
}

}  // namespace mps_shim::host
