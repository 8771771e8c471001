// Helpers shared by the host backend's op families: float32 working copies
// and a parallel loop over the executor's threads.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backends/host/executor.h"
#include "runtime/tensor.h"

namespace mps_shim::host {

// A contiguous copy of `t` converted to `dtype`, in host memory.
inline Tensor contiguous_as(const Tensor& t, DType dtype) {
  Tensor out = empty_tensor(t.sizes(), dtype, DeviceType::CPU);
  copy_into(out, t);
  return out;
}

// `t` itself when it is float32 and contiguous, else a contiguous float32 copy.
inline Tensor float32_contiguous(const Tensor& t) {
  if (t.dtype() == DType::Float32 && t.is_contiguous()) return t;
  return contiguous_as(t, DType::Float32);
}

inline const float* f32(const Tensor& t) { return reinterpret_cast<const float*>(t.data()); }
inline float* f32_mut(const Tensor& t) { return reinterpret_cast<float*>(t.data()); }

// f(first, end) over chunks of [0, total), at least `grain` long, on all
// cores. f must not throw (the pool has no way to carry an exception back).
template <typename F>
void parallel_for(uint64_t total, uint64_t grain, F&& f) {
  using Fn = std::remove_reference_t<F>;
  auto trampoline = [](void* ctx, uint64_t a, uint64_t b) { (*static_cast<Fn*>(ctx))(a, b); };
  Executor::instance().parallel_for(total, grain, trampoline, const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace mps_shim::host
