// Helpers of the host op compute: element loads and stores by dtype, a
// row-major walk over strided operands, and a parallel loop over the executor.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backends/host/executor.h"
#include "runtime/tensor.h"

namespace mps_shim::host {

template <typename T>
inline T load_as(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
inline void store_as(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

inline bool is_float_dtype(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}

inline double load_double(DType t, const char* p) {
  switch (t) {
    case DType::Float16: return half_bits_to_float(load_as<uint16_t>(p));
    case DType::BFloat16: return bfloat_bits_to_float(load_as<uint16_t>(p));
    case DType::Float32: return load_as<float>(p);
    case DType::Float64: return load_as<double>(p);
    case DType::Bool: return load_as<uint8_t>(p) != 0;
    case DType::UInt8: return load_as<uint8_t>(p);
    case DType::Int8: return load_as<int8_t>(p);
    case DType::Int16: return load_as<int16_t>(p);
    case DType::Int32: return load_as<int32_t>(p);
    case DType::Int64: return double(load_as<int64_t>(p));
    case DType::UInt16: return load_as<uint16_t>(p);
    case DType::UInt32: return load_as<uint32_t>(p);
    case DType::UInt64: return double(load_as<uint64_t>(p));
    case DType::ComplexFloat: case DType::ComplexDouble: break;  // never reach here (checked before)
  }
  return 0;
}

// Integer types (and bool) as int64; uint64 keeps its bit pattern.
inline int64_t load_int(DType t, const char* p) {
  switch (t) {
    case DType::Bool: return load_as<uint8_t>(p) != 0;
    case DType::UInt8: return load_as<uint8_t>(p);
    case DType::Int8: return load_as<int8_t>(p);
    case DType::Int16: return load_as<int16_t>(p);
    case DType::Int32: return load_as<int32_t>(p);
    case DType::UInt16: return load_as<uint16_t>(p);
    case DType::UInt32: return load_as<uint32_t>(p);
    case DType::Int64: case DType::UInt64: return load_as<int64_t>(p);
    default: return int64_t(load_double(t, p));
  }
}

// A floating value into a floating type (rounded once, to nearest even).
inline void store_double(DType t, char* p, double v) {
  switch (t) {
    case DType::Float16: return store_as(p, float_to_half_bits(float(v)));
    case DType::BFloat16: return store_as(p, float_to_bfloat_bits(float(v)));
    case DType::Float32: return store_as(p, float(v));
    default: return store_as(p, v);
  }
}

// An integer into an integer type or bool, wrapping as C++ unsigned conversion does.
inline void store_int(DType t, char* p, int64_t v) {
  switch (t) {
    case DType::Bool: return store_as<uint8_t>(p, v != 0);
    case DType::UInt8: case DType::Int8: return store_as(p, uint8_t(v));
    case DType::Int16: case DType::UInt16: return store_as(p, uint16_t(v));
    case DType::Int32: case DType::UInt32: return store_as(p, uint32_t(v));
    default: return store_as(p, v);
  }
}

inline bool is_nonzero(DType t, const char* p) {
  switch (t) {
    case DType::Float16: case DType::BFloat16: return (load_as<uint16_t>(p) & 0x7fff) != 0;
    case DType::Float32: return load_as<float>(p) != 0.0f || std::isnan(load_as<float>(p));
    case DType::Float64: return load_as<double>(p) != 0.0 || std::isnan(load_as<double>(p));
    default: return load_int(t, p) != 0;
  }
}

// Element offsets of N operands with their own strides over one shape, walked in row-major order:
// run(begin, end, f) calls f(offsets) for linear positions [begin, end).
template <size_t N>
class StridedWalk {
 public:
  StridedWalk(std::vector<int64_t> sizes, std::array<std::vector<int64_t>, N> strides)
      : sizes_(std::move(sizes)), strides_(std::move(strides)) {}

  template <typename F>
  void run(int64_t begin, int64_t end, F&& f) const {
    const size_t nd = sizes_.size();
    std::array<int64_t, N> off{};
    if (nd == 0) {
      if (begin < end) f(off);
      return;
    }
    std::vector<int64_t> coord(nd);
    int64_t rest = begin;
    for (size_t d = nd; d-- > 0;) {
      coord[d] = rest % sizes_[d];
      rest /= sizes_[d];
      for (size_t k = 0; k < N; ++k) off[k] += coord[d] * strides_[k][d];
    }
    const int64_t inner = sizes_[nd - 1];
    std::array<int64_t, N> step{};
    for (size_t k = 0; k < N; ++k) step[k] = strides_[k][nd - 1];
    int64_t pos = begin;
    while (pos < end) {
      const int64_t run_len = std::min(inner - coord[nd - 1], end - pos);
      for (int64_t i = 0; i < run_len; ++i) {
        f(off);
        for (size_t k = 0; k < N; ++k) off[k] += step[k];
      }
      pos += run_len;
      coord[nd - 1] += run_len;
      if (pos >= end) break;
      // Carry into the outer dimensions.
      for (size_t k = 0; k < N; ++k) off[k] -= coord[nd - 1] * step[k];
      coord[nd - 1] = 0;
      for (size_t d = nd - 1; d-- > 0;) {
        ++coord[d];
        for (size_t k = 0; k < N; ++k) off[k] += strides_[k][d];
        if (coord[d] < sizes_[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= coord[d] * strides_[k][d];
        coord[d] = 0;
      }
    }
  }

 private:
  std::vector<int64_t> sizes_;
  std::array<std::vector<int64_t>, N> strides_;
};

// f(begin, end) over disjoint ranges of [0, total), spread over the executor's threads when total
// reaches `grain` items more than once.
template <typename F>
void parallel_range(int64_t total, int64_t grain, F&& f) {
  if (total <= 0) return;
  Executor::instance().parallel_for(
      uint64_t(total), uint64_t(grain > 0 ? grain : 1),
      [](void* ctx, uint64_t b, uint64_t e) { (*static_cast<F*>(ctx))(int64_t(b), int64_t(e)); }, &f);
}

}  // namespace mps_shim::host
