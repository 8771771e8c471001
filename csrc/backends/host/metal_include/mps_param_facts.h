// Facts about a kernel parameter's type that the runtime's binding checks
// use, recorded by every engine's modules (the host's kernel table, the
// CUDA engine's size arrays).
#ifndef MPS_PARAM_FACTS_H
#define MPS_PARAM_FACTS_H

namespace mps_host {

// Facts about a buffer parameter's type P (`T*` or `T&`), recorded for the
// runtime's binding checks: the size of T (0 for void), whether P is a
// reference, whether the kernel may write T.
// (param_pointee: checked mode's pointer class says what it points to.)
template <typename P>
struct param_pointee {
  using type = std::remove_pointer_t<std::remove_reference_t<P>>;
};
template <typename P>
using param_value_t = typename param_pointee<P>::type;
// A 3-vector's padding lane carries nothing, so 3 values suffice to bind one
// (torch packs a list of 3 ints into 12 bytes for an int3).
template <typename P>
constexpr uint32_t param_value_size() {
  using T = std::remove_cv_t<param_value_t<P>>;
  if constexpr (std::is_void_v<T>) return 0;
  else if constexpr (metal::vector_traits<T>::size == 3) return uint32_t(3 * sizeof(typename metal::vector_traits<T>::element));
  else return uint32_t(sizeof(T));
}
template <typename P>
constexpr int param_is_reference() { return std::is_reference_v<P> ? 1 : 0; }
template <typename P>
constexpr int param_writable() { return std::is_const_v<param_value_t<P>> ? 0 : 1; }

}  // namespace mps_host

#endif
