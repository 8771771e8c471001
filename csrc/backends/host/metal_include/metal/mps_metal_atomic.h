// Metal's atomics: atomic<T> for int, uint, ulong, bool and float, and the
// atomic_*_explicit functions. Kernels run on many CPU threads at once, so
// these are real hardware atomics (GCC __atomic builtins); float add/sub,
// min and max are compare-exchange loops.
#ifndef MPS_METAL_ATOMIC_H
#define MPS_METAL_ATOMIC_H

#ifndef MPS_HOST_METAL_H
#error "include mps_host_metal.h instead"
#endif

namespace metal {

enum memory_order {
  memory_order_relaxed = __ATOMIC_RELAXED,
  memory_order_acquire = __ATOMIC_ACQUIRE,
  memory_order_release = __ATOMIC_RELEASE,
  memory_order_acq_rel = __ATOMIC_ACQ_REL,
  memory_order_seq_cst = __ATOMIC_SEQ_CST,
};

// Unscoped, as Apple's, and with the specification's four scopes only: MLX's fence.metal defines
// its own metal::thread_scope_system (a cast of __METAL_MEMORY_SCOPE_SYSTEM__).
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup, thread_scope_device };

template <typename T>
struct atomic {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, uint> || std::is_same_v<T, bool> ||
                    std::is_same_v<T, float> || std::is_same_v<T, ulong> || std::is_same_v<T, long>,
                "Metal atomics hold int, uint, ulong, bool or float");
  T value_;
};

typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<bool> atomic_bool;
typedef atomic<float> atomic_float;
typedef atomic<ulong> atomic_ulong;

namespace detail {
// A failed compare-exchange may not be stronger than its success order.
constexpr int failure_order(int order) {
  return order == __ATOMIC_ACQ_REL ? __ATOMIC_ACQUIRE : order == __ATOMIC_RELEASE ? __ATOMIC_RELAXED : order;
}

template <typename T, typename F>
MPS_SHIM_INLINE T update(volatile atomic<T>* obj, F next, int order) {
  T old;
  __atomic_load(&obj->value_, &old, __ATOMIC_RELAXED);
  for (;;) {
    T desired = next(old);
    if (__atomic_compare_exchange(&obj->value_, &old, &desired, true, order, failure_order(order))) return old;
  }
}
}  // namespace detail

template <typename T>
MPS_SHIM_INLINE void atomic_store_explicit(volatile atomic<T>* obj, T desired, memory_order order) {
  __atomic_store(&obj->value_, &desired, order == memory_order_relaxed ? __ATOMIC_RELAXED : __ATOMIC_SEQ_CST);
}
// A thread that polls an atomic may be waiting for another thread of its
// threadgroup: on the fiber path, let the others run (and let the progress
// guard stop a wait that can never end). Kernels that poll run on that path.
template <typename T>
MPS_SHIM_INLINE T atomic_load_explicit(const volatile atomic<T>* obj, memory_order order) {
  mps_host::fibers::yield_for_spin();
  T value;
  __atomic_load(&obj->value_, &value, order == memory_order_relaxed ? __ATOMIC_RELAXED : __ATOMIC_SEQ_CST);
  return value;
}
template <typename T>
MPS_SHIM_INLINE T atomic_exchange_explicit(volatile atomic<T>* obj, T desired, memory_order order) {
  T old;
  __atomic_exchange(&obj->value_, &desired, &old, order);
  return old;
}
template <typename T>
MPS_SHIM_INLINE bool atomic_compare_exchange_weak_explicit(volatile atomic<T>* obj, T* expected, T desired,
                                                           memory_order success, memory_order failure) {
  mps_host::fibers::yield_for_spin();
  return __atomic_compare_exchange(&obj->value_, expected, &desired, true, success, detail::failure_order(failure));
}
template <typename T>
MPS_SHIM_INLINE bool atomic_compare_exchange_strong_explicit(volatile atomic<T>* obj, T* expected, T desired,
                                                             memory_order success, memory_order failure) {
  return __atomic_compare_exchange(&obj->value_, expected, &desired, false, success, detail::failure_order(failure));
}

// Integer read-modify-write: one instruction each.
#define MPS_ATOMIC_INT_OP(name, builtin)                                                          \
  MPS_SHIM_INLINE int atomic_##name##_explicit(volatile atomic<int>* o, int v, memory_order m) {   \
    return builtin(&o->value_, v, m);                                                              \
  }                                                                                                \
  MPS_SHIM_INLINE uint atomic_##name##_explicit(volatile atomic<uint>* o, uint v, memory_order m) { \
    return builtin(&o->value_, v, m);                                                              \
  }                                                                                                \
  MPS_SHIM_INLINE ulong atomic_##name##_explicit(volatile atomic<ulong>* o, ulong v, memory_order m) { \
    return builtin(&o->value_, v, m);                                                              \
  }
MPS_ATOMIC_INT_OP(fetch_add, __atomic_fetch_add)
MPS_ATOMIC_INT_OP(fetch_sub, __atomic_fetch_sub)
MPS_ATOMIC_INT_OP(fetch_and, __atomic_fetch_and)
MPS_ATOMIC_INT_OP(fetch_or, __atomic_fetch_or)
MPS_ATOMIC_INT_OP(fetch_xor, __atomic_fetch_xor)
#undef MPS_ATOMIC_INT_OP

#define MPS_ATOMIC_MINMAX(T)                                                                          \
  MPS_SHIM_INLINE T atomic_fetch_min_explicit(volatile atomic<T>* o, T v, memory_order m) {            \
    return detail::update(o, [v](T old) { return v < old ? v : old; }, m);                             \
  }                                                                                                    \
  MPS_SHIM_INLINE T atomic_fetch_max_explicit(volatile atomic<T>* o, T v, memory_order m) {            \
    return detail::update(o, [v](T old) { return old < v ? v : old; }, m);                             \
  }
MPS_ATOMIC_MINMAX(int)
MPS_ATOMIC_MINMAX(uint)
MPS_ATOMIC_MINMAX(ulong)
MPS_ATOMIC_MINMAX(float)
#undef MPS_ATOMIC_MINMAX

MPS_SHIM_INLINE float atomic_fetch_add_explicit(volatile atomic<float>* o, float v, memory_order m) {
  return detail::update(o, [v](float old) { return old + v; }, m);
}
MPS_SHIM_INLINE float atomic_fetch_sub_explicit(volatile atomic<float>* o, float v, memory_order m) {
  return detail::update(o, [v](float old) { return old - v; }, m);
}

// Fences: with one memory, a full fence orders everything.
template <typename MemFlags>  // metal::mem_flags, declared after this header
MPS_SHIM_INLINE void atomic_thread_fence(MemFlags, memory_order order, thread_scope = thread_scope_device) {
  __atomic_thread_fence(order);
}

}  // namespace metal

using metal::atomic_bool;
using metal::atomic_float;
using metal::atomic_int;
using metal::atomic_uint;
using metal::atomic_ulong;

#endif
