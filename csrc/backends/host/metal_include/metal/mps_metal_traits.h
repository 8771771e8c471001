// Metal's type traits (<metal_type_traits>), numeric_limits (<metal_limits>)
// and array<T, N> / array_ref<T> (<metal_array>, MSL specification §2.12.1).
//
// Metal 4 is C++17-based (§1.5) and its traits are C++17's, extended so that
// half and bfloat are floating-point types and so that make_signed/make_unsigned
// map vectors lane-wise. Traits whose answer does not involve those types are
// std's own (so metal:: and std:: traits interoperate); the others are defined
// here, with half and bfloat named explicitly, never through std's view of
// _Float16 (which C++17 does not count as arithmetic).
#ifndef MPS_METAL_TRAITS_H
#define MPS_METAL_TRAITS_H

#ifndef MPS_HOST_METAL_H
#error "mps_metal_traits.h is part of mps_host_metal.h; include that instead"
#endif

namespace mps_host {
namespace traits {

template <typename T> struct is_metal_float : std::false_type {};
template <> struct is_metal_float<half> : std::true_type {};
template <> struct is_metal_float<metal::bfloat> : std::true_type {};

// To with From's const/volatile qualifiers.
template <typename From, typename To>
using with_cv_t = std::conditional_t<
    std::is_const_v<From>,
    std::conditional_t<std::is_volatile_v<From>, const volatile To, const To>,
    std::conditional_t<std::is_volatile_v<From>, volatile To, To>>;

// Metal's signed 8-bit type is char (std::make_signed<uchar> would give signed char).
template <typename T> struct signed_of { using type = std::make_signed_t<T>; };
template <> struct signed_of<char> { using type = char; };
template <> struct signed_of<unsigned char> { using type = char; };
template <typename T, int N> struct signed_of<metal::vec<T, N>> {
  using type = metal::vec<typename signed_of<T>::type, N>;
};
template <typename T> struct unsigned_of { using type = std::make_unsigned_t<T>; };
template <typename T, int N> struct unsigned_of<metal::vec<T, N>> {
  using type = metal::vec<typename unsigned_of<T>::type, N>;
};

// numeric_limits of a 16-bit float format, every value built from its bits so
// that each is a constant expression whatever type half or bfloat is.
template <typename F, int Digits, int Digits10, int MaxDigits10, int MinExp, int MinExp10, int MaxExp, int MaxExp10,
          uint16_t Min, uint16_t Max, uint16_t Epsilon, uint16_t RoundError, uint16_t Inf, uint16_t QNaN,
          uint16_t SNaN>
struct limits16 {
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool is_exact = false;
  static constexpr bool has_infinity = true;
  static constexpr bool has_quiet_NaN = true;
  static constexpr bool has_signaling_NaN = true;
  static constexpr std::float_denorm_style has_denorm = std::denorm_present;
  static constexpr bool has_denorm_loss = false;
  static constexpr std::float_round_style round_style = std::round_to_nearest;
  static constexpr bool is_iec559 = true;
  static constexpr bool is_bounded = true;
  static constexpr bool is_modulo = false;
  static constexpr int digits = Digits;
  static constexpr int digits10 = Digits10;
  static constexpr int max_digits10 = MaxDigits10;
  static constexpr int radix = 2;
  static constexpr int min_exponent = MinExp;
  static constexpr int min_exponent10 = MinExp10;
  static constexpr int max_exponent = MaxExp;
  static constexpr int max_exponent10 = MaxExp10;
  static constexpr bool traps = false;
  static constexpr bool tinyness_before = false;

  static constexpr F min() noexcept { return from_bits(Min); }
  static constexpr F max() noexcept { return from_bits(Max); }
  static constexpr F lowest() noexcept { return from_bits(uint16_t(Max | 0x8000u)); }
  static constexpr F epsilon() noexcept { return from_bits(Epsilon); }
  static constexpr F round_error() noexcept { return from_bits(RoundError); }
  static constexpr F infinity() noexcept { return from_bits(Inf); }
  static constexpr F quiet_NaN() noexcept { return from_bits(QNaN); }
  static constexpr F signaling_NaN() noexcept { return from_bits(SNaN); }
  static constexpr F denorm_min() noexcept { return from_bits(1); }

 private:
  static constexpr F from_bits(uint16_t b) noexcept { return __builtin_bit_cast(F, b); }
};

}  // namespace traits
}  // namespace mps_host

namespace metal {

// ---- traits shared with C++17 --------------------------------------------------
// (Not rank/extent/alignment_of: kernels commonly name their own variables so,
// and `using namespace metal` would make a global one ambiguous. Not void_t:
// Apple's metal namespace has none, and MLX's steel headers define metal::void_t.)
using std::bool_constant;
using std::false_type;
using std::integral_constant;
using std::true_type;

using std::conditional;
using std::conditional_t;
using std::conjunction;
using std::conjunction_v;
using std::decay;
using std::decay_t;
using std::declval;
using std::disjunction;
using std::disjunction_v;
// Apple's internal spellings (`#pragma METAL internals : enable`), which MLX's atomic.h uses.
template <class... B> using _disjunction = std::disjunction<B...>;
template <class... B> using _conjunction = std::conjunction<B...>;
using std::enable_if;
using std::enable_if_t;
using std::negation;
using std::negation_v;

using std::add_const;
using std::add_const_t;
using std::add_cv;
using std::add_cv_t;
using std::add_lvalue_reference;
using std::add_lvalue_reference_t;
using std::add_pointer;
using std::add_pointer_t;
using std::add_rvalue_reference;
using std::add_rvalue_reference_t;
using std::add_volatile;
using std::add_volatile_t;
using std::remove_all_extents;
using std::remove_all_extents_t;
using std::remove_const;
using std::remove_const_t;
using std::remove_cv;
using std::remove_cv_t;
using std::remove_extent;
using std::remove_extent_t;
using std::remove_pointer;
using std::remove_pointer_t;
using std::remove_reference;
using std::remove_reference_t;
using std::remove_volatile;
using std::remove_volatile_t;
using std::underlying_type;
using std::underlying_type_t;
using std::common_type;
using std::common_type_t;

using std::is_array;
using std::is_array_v;
using std::is_assignable;
using std::is_assignable_v;
using std::is_base_of;
using std::is_base_of_v;
using std::is_class;
using std::is_class_v;
using std::is_const;
using std::is_const_v;
using std::is_constructible;
using std::is_constructible_v;
using std::is_convertible;
using std::is_convertible_v;
using std::is_copy_constructible;
using std::is_copy_constructible_v;
using std::is_default_constructible;
using std::is_default_constructible_v;
using std::is_enum;
using std::is_enum_v;
using std::is_function;
using std::is_function_v;
using std::is_integral;
using std::is_integral_v;
using std::is_lvalue_reference;
using std::is_lvalue_reference_v;
using std::is_null_pointer;
using std::is_null_pointer_v;
using std::is_pointer;
using std::is_pointer_v;
using std::is_reference;
using std::is_reference_v;
using std::is_rvalue_reference;
using std::is_rvalue_reference_v;
using std::is_same;
using std::is_same_v;
using std::is_standard_layout;
using std::is_standard_layout_v;
using std::is_trivial;
using std::is_trivial_v;
using std::is_trivially_copyable;
using std::is_trivially_copyable_v;
using std::is_union;
using std::is_union_v;
using std::is_unsigned;
using std::is_unsigned_v;
using std::is_void;
using std::is_void_v;
using std::is_volatile;
using std::is_volatile_v;

// ---- traits that count half and bfloat as floating point -------------------------
template <typename T>
struct is_floating_point
    : bool_constant<std::is_floating_point_v<remove_cv_t<T>> || mps_host::traits::is_metal_float<remove_cv_t<T>>::value> {};
template <typename T>
constexpr bool is_floating_point_v = is_floating_point<T>::value;

template <typename T>
struct is_arithmetic : bool_constant<is_integral_v<T> || is_floating_point_v<T>> {};
template <typename T>
constexpr bool is_arithmetic_v = is_arithmetic<T>::value;

template <typename T>
struct is_signed : bool_constant<std::is_signed_v<T> || is_floating_point_v<T>> {};
template <typename T>
constexpr bool is_signed_v = is_signed<T>::value;

template <typename T>
struct is_scalar : bool_constant<std::is_scalar_v<T> || is_floating_point_v<T>> {};
template <typename T>
constexpr bool is_scalar_v = is_scalar<T>::value;

template <typename T>
struct is_fundamental : bool_constant<std::is_fundamental_v<T> || is_floating_point_v<T>> {};
template <typename T>
constexpr bool is_fundamental_v = is_fundamental<T>::value;

// make_signed/make_unsigned of an integer scalar or vector type; cv is kept.
template <typename T>
struct make_signed {
  using type = mps_host::traits::with_cv_t<T, typename mps_host::traits::signed_of<remove_cv_t<T>>::type>;
};
template <typename T>
using make_signed_t = typename make_signed<T>::type;
template <typename T>
struct make_unsigned {
  using type = mps_host::traits::with_cv_t<T, typename mps_host::traits::unsigned_of<remove_cv_t<T>>::type>;
};
template <typename T>
using make_unsigned_t = typename make_unsigned<T>::type;

// ---- vector traits ---------------------------------------------------------------
template <typename T>
constexpr bool is_vector_v = is_vector<T>::value;

// The lane count of a vector type (1 for a scalar).
template <typename T>
struct vec_elements : integral_constant<int, 1> {};
template <typename T, int N>
struct vec_elements<vec<T, N>> : integral_constant<int, N> {};
template <typename T>
struct vec_elements<const T> : vec_elements<T> {};
template <typename T>
struct vec_elements<volatile T> : vec_elements<T> {};
template <typename T>
struct vec_elements<const volatile T> : vec_elements<T> {};
template <typename T>
constexpr int vec_elements_v = vec_elements<T>::value;

// Address spaces are erased in translation, so removing one is the identity.
template <typename T>
struct remove_addrspace {
  using type = T;
};
template <typename T>
using remove_addrspace_t = typename remove_addrspace<T>::type;

// ---- numeric_limits ----------------------------------------------------------------
template <typename T>
struct numeric_limits : std::numeric_limits<T> {};
template <typename T>
struct numeric_limits<const T> : numeric_limits<T> {};
template <typename T>
struct numeric_limits<volatile T> : numeric_limits<T> {};
template <typename T>
struct numeric_limits<const volatile T> : numeric_limits<T> {};

// IEEE binary16: max 65504, min 2^-14, epsilon 2^-10, denorm_min 2^-24.
template <>
struct numeric_limits<half>
    : mps_host::traits::limits16<half, 11, 3, 5, -13, -4, 16, 4, 0x0400, 0x7bff, 0x1400, 0x3800, 0x7c00, 0x7e00,
                                 0x7d00> {};
// bfloat16: max 0x1.fep127, min 2^-126, epsilon 2^-7, denorm_min 2^-133.
template <>
struct numeric_limits<bfloat>
    : mps_host::traits::limits16<bfloat, 8, 2, 4, -125, -37, 128, 38, 0x0080, 0x7f7f, 0x3c00, 0x3f00, 0x7f80, 0x7fc0,
                                 0x7fa0> {};

// ---- array<T, N> and array_ref<T> ----------------------------------------------------
// An aggregate like std::array: `array<float, 3> a = {1, 2, 3};`.
template <typename T, size_t N>
struct array {
  T _elems[N > 0 ? N : 1];

  using value_type = T;
  using size_type = size_t;
  using difference_type = ptrdiff_t;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using iterator = T*;
  using const_iterator = const T*;

  MPS_SHIM_INLINE constexpr reference operator[](size_t pos) { return _elems[pos]; }
  MPS_SHIM_INLINE constexpr const_reference operator[](size_t pos) const { return _elems[pos]; }
  MPS_SHIM_INLINE constexpr reference front() { return _elems[0]; }
  MPS_SHIM_INLINE constexpr const_reference front() const { return _elems[0]; }
  MPS_SHIM_INLINE constexpr reference back() { return _elems[N - 1]; }
  MPS_SHIM_INLINE constexpr const_reference back() const { return _elems[N - 1]; }
  MPS_SHIM_INLINE constexpr pointer data() { return _elems; }
  MPS_SHIM_INLINE constexpr const_pointer data() const { return _elems; }
  MPS_SHIM_INLINE constexpr iterator begin() { return _elems; }
  MPS_SHIM_INLINE constexpr const_iterator begin() const { return _elems; }
  MPS_SHIM_INLINE constexpr const_iterator cbegin() const { return _elems; }
  MPS_SHIM_INLINE constexpr iterator end() { return _elems + N; }
  MPS_SHIM_INLINE constexpr const_iterator end() const { return _elems + N; }
  MPS_SHIM_INLINE constexpr const_iterator cend() const { return _elems + N; }
  MPS_SHIM_INLINE static constexpr size_t size() { return N; }
  MPS_SHIM_INLINE static constexpr size_t max_size() { return N; }
  MPS_SHIM_INLINE static constexpr bool empty() { return N == 0; }
};

// An immutable view of size() elements owned elsewhere (§2.12.1.3).
template <typename T>
struct array_ref {
  using value_type = T;
  using size_type = size_t;
  using difference_type = ptrdiff_t;
  using const_reference = const T&;
  using const_pointer = const T*;
  using const_iterator = const T*;
  using iterator = const T*;

  MPS_SHIM_INLINE constexpr array_ref() : ptr_(nullptr), len_(0) {}
  constexpr array_ref(const array_ref&) = default;
  array_ref& operator=(const array_ref&) = default;
  MPS_SHIM_INLINE constexpr array_ref(const T* array, size_t length) : ptr_(array), len_(length) {}
  template <size_t N>
  MPS_SHIM_INLINE constexpr array_ref(const T (&a)[N]) : ptr_(a), len_(N) {}
  template <size_t N>
  MPS_SHIM_INLINE constexpr array_ref(const metal::array<T, N>& a) : ptr_(a.data()), len_(N) {}

  MPS_SHIM_INLINE constexpr const_reference operator[](size_t pos) const { return ptr_[pos]; }
  MPS_SHIM_INLINE constexpr const_reference front() const { return ptr_[0]; }
  MPS_SHIM_INLINE constexpr const_reference back() const { return ptr_[len_ - 1]; }
  MPS_SHIM_INLINE constexpr const_pointer data() const { return ptr_; }
  MPS_SHIM_INLINE constexpr const_iterator begin() const { return ptr_; }
  MPS_SHIM_INLINE constexpr const_iterator end() const { return ptr_ + len_; }
  MPS_SHIM_INLINE constexpr size_t size() const { return len_; }
  MPS_SHIM_INLINE constexpr bool empty() const { return len_ == 0; }

 private:
  const T* ptr_;
  size_t len_;
};

template <typename T>
MPS_SHIM_INLINE constexpr array_ref<T> make_array_ref(const T* array, size_t length) {
  return array_ref<T>(array, length);
}
template <typename T, size_t N>
MPS_SHIM_INLINE constexpr array_ref<T> make_array_ref(const T (&a)[N]) {
  return array_ref<T>(a);
}

}  // namespace metal

#endif
