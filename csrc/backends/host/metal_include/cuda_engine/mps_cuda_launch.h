// What the CUDA translation's entry points use (backends/cuda/cuda_translation.cpp):
// a Metal threadgroup is a CUDA block of one dimension, so that its warps are
// Metal's SIMD-groups exactly. The block holds the requested group's threads;
// an edge group of a grid that is not a multiple of the group is smaller in
// Metal (its threads numbered densely over its actual size), and the block's
// threads past that size return at once: they have no side effects and, as
// threads that returned, no part in barriers.
#ifndef MPS_CUDA_LAUNCH_H
#define MPS_CUDA_LAUNCH_H

namespace mps_cuda {

// The dispatch as Metal states it: threads per grid and requested threads per group.
struct Grid {
  uint32_t grid[3];
  uint32_t group[3];
};

struct ThreadIds {
  metal::uint3 in_grid, in_group, group, grid_size, group_size, groups, dispatch_group;
  uint index_in_group, simd_lane, simd_group, simd_width, simd_groups, dispatch_simd_groups;
  uint quad_lane, quad_group, quad_groups, dispatch_quad_groups;
};

// The calling CUDA thread's Metal ids; false for a thread past its group's actual size.
__forceinline__ bool thread_ids(const Grid& g, ThreadIds& t) {
  const uint32_t b[3] = {blockIdx.x, blockIdx.y, blockIdx.z};
  uint32_t size[3];
  for (int d = 0; d < 3; ++d) size[d] = metal::min(g.group[d], g.grid[d] - b[d] * g.group[d]);
  const uint32_t actual = size[0] * size[1] * size[2], requested = g.group[0] * g.group[1] * g.group[2];
  const uint32_t i = threadIdx.x;
  if (i >= actual) return false;
  const uint32_t x = i % size[0], y = i / size[0] % size[1], z = i / (size[0] * size[1]);
  t.in_group = metal::uint3(x, y, z);
  t.group = metal::uint3(b[0], b[1], b[2]);
  t.in_grid = metal::uint3(b[0] * g.group[0] + x, b[1] * g.group[1] + y, b[2] * g.group[2] + z);
  t.grid_size = metal::uint3(g.grid[0], g.grid[1], g.grid[2]);
  t.group_size = metal::uint3(size[0], size[1], size[2]);
  t.groups = metal::uint3(gridDim.x, gridDim.y, gridDim.z);
  t.dispatch_group = metal::uint3(g.group[0], g.group[1], g.group[2]);
  t.index_in_group = i;
  t.simd_lane = i % 32;
  t.simd_group = i / 32;
  t.simd_width = 32;
  t.simd_groups = (actual + 31) / 32;
  t.dispatch_simd_groups = (requested + 31) / 32;
  t.quad_lane = i % 4;
  t.quad_group = i / 4;
  t.quad_groups = (actual + 3) / 4;
  t.dispatch_quad_groups = (requested + 3) / 4;
  return true;
}

// A parameter of the kernel function, by position.
template <size_t I, typename... A> struct nth;
template <typename H, typename... T> struct nth<0, H, T...> { using type = H; };
template <size_t I, typename H, typename... T> struct nth<I, H, T...> : nth<I - 1, T...> {};
template <typename F> struct fn_traits;
template <typename R, typename... A> struct fn_traits<R (*)(A...)> {
  template <size_t I> using arg = typename nth<I, A...>::type;
};

// A thread-position parameter from its uint3 (or uint) value, as Metal converts them.
template <typename A>
__forceinline__ A thread_value(metal::uint3 v) {
  using T = std::remove_cv_t<std::remove_reference_t<A>>;
  if constexpr (metal::is_vector<T>::value) {
    using E = typename metal::vector_traits<T>::element;
    if constexpr (metal::vector_traits<T>::size == 2) return T(E(v.x), E(v.y));
    else return T(E(v.x), E(v.y), E(v.z));
  } else {
    return T(v.x);
  }
}
template <typename A>
__forceinline__ A thread_value(uint v) { return std::remove_cv_t<std::remove_reference_t<A>>(v); }

// A value parameter's bytes, as the kernel parameter carries them.
template <typename A>
struct value_bytes {
  using T = std::remove_cv_t<std::remove_reference_t<A>>;
  alignas(alignof(T)) unsigned char b[sizeof(T)];
};
// A reference parameter: the tensor bound to it (`p`, device memory), else the bytes bound to it.
template <typename A>
__forceinline__ A bind_reference(const void* p, const value_bytes<A>& v) {
  using T = std::remove_cv_t<std::remove_reference_t<A>>;
  return p ? *static_cast<const T*>(p) : *reinterpret_cast<const T*>(v.b);
}

extern __shared__ unsigned char dynamic_threadgroup_memory[];

}  // namespace mps_cuda

#endif
