// Advanced indexing and nonzero on the CPU. Index reads and plain writes are
// spread over cores; accumulating writes run on one thread, in row-major order,
// so duplicate indices add up deterministically.
#include <algorithm>
#include <atomic>

#include "backends/host/ops/elements.h"
#include "backends/host/ops/host_ops.h"
#include "ops/op_checks.h"

namespace mps_shim::host {

namespace {

// Element offsets of operands with their own strides over one shape; like StridedWalk with a run-time count.
class MultiWalk {
 public:
  MultiWalk(std::vector<int64_t> sizes, std::vector<std::vector<int64_t>> strides)
      : sizes_(std::move(sizes)), strides_(std::move(strides)) {}

  template <typename F>
  void run(int64_t begin, int64_t end, F&& f) const {
    const size_t nd = sizes_.size(), n = strides_.size();
    std::vector<int64_t> off(n, 0), coord(nd, 0);
    int64_t rest = begin;
    for (size_t d = nd; d-- > 0;) {
      coord[d] = rest % sizes_[d];
      rest /= sizes_[d];
      for (size_t k = 0; k < n; ++k) off[k] += coord[d] * strides_[k][d];
    }
    for (int64_t pos = begin; pos < end; ++pos) {
      f(off.data());
      for (size_t d = nd; d-- > 0;) {
        for (size_t k = 0; k < n; ++k) off[k] += strides_[k][d];
        if (++coord[d] < sizes_[d]) break;
        for (size_t k = 0; k < n; ++k) off[k] -= coord[d] * strides_[k][d];
        coord[d] = 0;
      }
    }
  }

 private:
  std::vector<int64_t> sizes_;
  std::vector<std::vector<int64_t>> strides_;
};

// The first out-of-range index met, reported after the parallel loop (nothing may throw inside it).
struct BadIndex {
  std::atomic<bool> seen{false};
  int64_t value = 0;
  size_t which = 0;
  void record(int64_t v, size_t k) {
    bool expected = false;
    if (seen.compare_exchange_strong(expected, true)) {
      value = v;
      which = k;
    }
  }
};

struct Indexer {
  const ops::IndexSpec& spec;
  std::vector<const char*> base;
  std::vector<DType> types;
  std::vector<size_t> elsize;

  explicit Indexer(const ops::IndexSpec& s) : spec(s) {
    for (const Tensor& t : s.indices) {
      base.push_back(t.data());
      types.push_back(t.dtype());
      elsize.push_back(t.element_size());
    }
  }

  // Offset (elements) that the indices at `off` (operand offsets 2.. of the walk) add, or false when one is out of range.
  bool offset(const int64_t* off, int64_t& out, BadIndex& bad) const {
    out = 0;
    for (size_t k = 0; k < base.size(); ++k) {
      const char* p = base[k] + off[k] * int64_t(elsize[k]);
      int64_t i = types[k] == DType::Int32 ? int64_t(load_as<int32_t>(p)) : load_as<int64_t>(p);
      const int64_t size = spec.sizes[k];
      if (i < -size || i >= size) {
        bad.record(i, k);
        return false;
      }
      if (i < 0) i += size;
      out += i * spec.strides[k];
    }
    return true;
  }

  [[noreturn]] void fail(const char* op, const BadIndex& bad) const {
    ops::op_fail(op, "index ", bad.value, " is out of bounds for dimension ", spec.dims[bad.which], " with size ",
                 spec.sizes[bad.which]);
  }
};

std::vector<std::vector<int64_t>> walk_strides(const Tensor& a, const Tensor& b, const ops::IndexSpec& spec) {
  std::vector<std::vector<int64_t>> s{a.strides(), b.strides()};
  for (const Tensor& t : spec.indices) s.push_back(t.strides());
  return s;
}

void add_into(DType t, char* dst, const char* src) {
  if (is_float_dtype(t))
    store_double(t, dst, load_double(t, dst) + load_double(t, src));
  else if (t == DType::Bool)
    store_as<uint8_t>(dst, (load_as<uint8_t>(dst) | load_as<uint8_t>(src)) != 0);
  else
    store_int(t, dst, int64_t(uint64_t(load_int(t, dst)) + uint64_t(load_int(t, src))));
}

}  // namespace

void HostOps::index(const Tensor& src, const ops::IndexSpec& spec, const Tensor& dst) {
  const MultiWalk walk(dst.sizes(), walk_strides(dst, src, spec));
  const Indexer ix(spec);
  BadIndex bad;
  const size_t el = dst.element_size();
  char* out = dst.data();
  const char* in = src.data();
  parallel_range(dst.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    walk.run(b, e, [&](const int64_t* off) {
      int64_t extra;
      if (ix.offset(off + 2, extra, bad)) std::memcpy(out + off[0] * int64_t(el), in + (off[1] + extra) * int64_t(el), el);
    });
  });
  if (bad.seen) ix.fail("index", bad);
}

void HostOps::index_put(const Tensor& dst, const ops::IndexSpec& spec, const Tensor& src, bool accumulate) {
  const MultiWalk walk(src.sizes(), walk_strides(dst, src, spec));
  const Indexer ix(spec);
  BadIndex bad;
  const size_t el = dst.element_size();
  const DType dt = dst.dtype();
  char* out = dst.data();
  const char* in = src.data();
  int64_t total = 1;
  for (int64_t s : src.sizes()) total *= s;
  // Validate first: an error leaves nothing half-written behind.
  parallel_range(total, 1 << 14, [&](int64_t b, int64_t e) {
    walk.run(b, e, [&](const int64_t* off) {
      int64_t extra;
      ix.offset(off + 2, extra, bad);
    });
  });
  if (bad.seen) ix.fail("index_put", bad);
  if (accumulate) {
    walk.run(0, total, [&](const int64_t* off) {
      int64_t extra;
      ix.offset(off + 2, extra, bad);
      add_into(dt, out + (off[0] + extra) * int64_t(el), in + off[1] * int64_t(el));
    });
    return;
  }
  parallel_range(total, 1 << 14, [&](int64_t b, int64_t e) {
    walk.run(b, e, [&](const int64_t* off) {
      int64_t extra;
      ix.offset(off + 2, extra, bad);
      std::memcpy(out + (off[0] + extra) * int64_t(el), in + off[1] * int64_t(el), el);
    });
  });
}

int64_t HostOps::count_nonzero(const Tensor& self) {
  const StridedWalk<1> walk(self.sizes(), {self.strides()});
  const char* p = self.data();
  const DType t = self.dtype();
  const int64_t el = int64_t(self.element_size());
  std::atomic<int64_t> count{0};
  parallel_range(self.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    int64_t c = 0;
    walk.run(b, e, [&](const std::array<int64_t, 1>& off) { c += is_nonzero(t, p + off[0] * el); });
    count += c;
  });
  return count.load();
}

void HostOps::nonzero(const Tensor& self, const Tensor& out, int64_t fill_value) {
  const int64_t nd = self.dim(), rows = out.sizes()[0];
  const char* p = self.data();
  const DType t = self.dtype();
  const int64_t el = int64_t(self.element_size());
  int64_t* o = reinterpret_cast<int64_t*>(out.data());
  const int64_t rs = out.strides()[0], cs = nd > 0 ? out.strides()[1] : 0;
  int64_t row = 0;
  std::vector<int64_t> coord(size_t(nd), 0);
  const StridedWalk<1> walk(self.sizes(), {self.strides()});
  const int64_t n = self.numel();
  // One thread: the row of each element depends on every element before it.
  walk.run(0, n, [&](const std::array<int64_t, 1>& off) {
    if (row < rows && is_nonzero(t, p + off[0] * el)) {
      for (int64_t d = 0; d < nd; ++d) o[row * rs + d * cs] = coord[size_t(d)];
      ++row;
    }
    for (int64_t d = nd; d-- > 0;) {
      if (++coord[size_t(d)] < self.sizes()[size_t(d)]) break;
      coord[size_t(d)] = 0;
    }
  });
  for (; row < rows; ++row)
    for (int64_t d = 0; d < nd; ++d) o[row * rs + d * cs] = fill_value;
}

}  // namespace mps_shim::host
