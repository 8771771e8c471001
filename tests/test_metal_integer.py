"""Metal's integer functions, numeric_limits, type traits and metal::array on the host engine.

Every integer function of the MSL specification's Table 6.2 (§6.3) runs in a kernel
for every integer width and signedness, scalar and vector, and is compared with a
reference written here from the table's definitions in Python's exact integers:
abs wraps at the minimum, absdiff returns the unsigned type, the *sat functions
saturate the exact result, hadd/rhadd form (x + y) >> 1 and (x + y + 1) >> 1
without overflow (rounding toward -infinity for signed types), clz/ctz of 0 are
the bit width, rotate counts are taken modulo the width, extract_bits
sign-extends for signed types. Inputs include 0, ±1, the extremes and their
neighbours in every pairing, plus random values.

numeric_limits values are written from a kernel and compared with numpy.finfo /
numpy.iinfo, and for bfloat with its bit patterns. Type traits are checked by
static_asserts that must compile, plus failing cases that must raise CompileError.
"""
import numpy as np
import pytest

import mps_shim

N = 256  # test values per type

# Metal type -> (numpy dtype, unsigned Metal type)
INT_TYPES = {
    "char": (np.int8, "uchar"),
    "uchar": (np.uint8, "uchar"),
    "short": (np.int16, "ushort"),
    "ushort": (np.uint16, "ushort"),
    "int": (np.int32, "uint"),
    "uint": (np.uint32, "uint"),
    "long": (np.int64, "ulong"),
    "ulong": (np.uint64, "ulong"),
}

# The functions each kernel writes, in order (absdiff goes to its own buffer).
FUNCTIONS = ["abs", "addsat", "subsat", "hadd", "rhadd", "mulhi", "madhi", "madsat", "clz", "ctz", "popcount",
             "reverse_bits", "rotate", "extract_bits", "insert_bits", "min", "max", "clamp", "min3", "max3",
             "median3"]

PRELUDE = r"""
#include <metal_stdlib>
using namespace metal;

template <typename T, int N>
vec<T, N> load(constant T* p) {
    vec<T, N> v;
    for (int k = 0; k < N; ++k) v[k] = p[k];
    return v;
}
template <typename T, int N>
void store(device T* p, vec<T, N> v) {
    for (int k = 0; k < N; ++k) p[k] = v[k];
}
template <typename T>
void store(device T* p, T v) { p[0] = v; }
"""

# One kernel per type (scalar: L = 1; vector: L lanes). The bodies call the
# functions unqualified on scalars and metal::-qualified on vectors.
KERNEL_BODY = r"""
kernel void {name}(device {T}* out [[buffer(0)]], device {U}* diff [[buffer(1)]],
                   constant {T}* a [[buffer(2)]], constant {T}* b [[buffer(3)]], constant {T}* c [[buffer(4)]],
                   constant uint* off [[buffer(5)]], constant uint* nbits [[buffer(6)]],
                   uint i [[thread_position_in_grid]]) {{
    const {V} x = {load}(a + i * {L}), y = {load}(b + i * {L}), z = {load}(c + i * {L});
    const uint o0 = off[i], n0 = nbits[i];
    device {T}* o = out + i * {F} * {L};
    store(o + 0 * {L}, {ns}abs(x));
    store(o + 1 * {L}, {ns}addsat(x, y));
    store(o + 2 * {L}, {ns}subsat(x, y));
    store(o + 3 * {L}, {ns}hadd(x, y));
    store(o + 4 * {L}, {ns}rhadd(x, y));
    store(o + 5 * {L}, {ns}mulhi(x, y));
    store(o + 6 * {L}, {ns}madhi(x, y, z));
    store(o + 7 * {L}, {ns}madsat(x, y, z));
    store(o + 8 * {L}, {ns}clz(x));
    store(o + 9 * {L}, {ns}ctz(x));
    store(o + 10 * {L}, {ns}popcount(x));
    store(o + 11 * {L}, {ns}reverse_bits(x));
    store(o + 12 * {L}, {ns}rotate(x, y));
    store(o + 13 * {L}, {ns}extract_bits(x, o0, n0));
    store(o + 14 * {L}, {ns}insert_bits(x, y, o0, n0));
    store(o + 15 * {L}, {ns}min(x, y));
    store(o + 16 * {L}, {ns}max(x, y));
    store(o + 17 * {L}, {ns}clamp(x, {ns}min(y, z), {ns}max(y, z)));
    store(o + 18 * {L}, {ns}min3(x, y, z));
    store(o + 19 * {L}, {ns}max3(x, y, z));
    store(o + 20 * {L}, {ns}median3(x, y, z));
    store(diff + i * {L}, {ns}absdiff(x, y));
}}
"""

VECTOR_CASES = [("char", 4), ("uchar", 3), ("short", 2), ("ushort", 4), ("int", 4), ("int", 3), ("uint", 2),
                ("long", 2), ("ulong", 4)]


def scalar_kernel(t):
    return KERNEL_BODY.format(name=f"scalar_{t}", T=t, U=INT_TYPES[t][1], V=t, L=1, F=len(FUNCTIONS),
                              load=f"*", ns="")


def vector_kernel(t, lanes):
    return KERNEL_BODY.format(name=f"vector_{t}{lanes}", T=t, U=INT_TYPES[t][1], V=f"{t}{lanes}", L=lanes,
                              F=len(FUNCTIONS), load=f"load<{t}, {lanes}>", ns="metal::")


INTEGER_SOURCE = PRELUDE + "".join(scalar_kernel(t) for t in INT_TYPES) + "".join(
    vector_kernel(t, n) for t, n in VECTOR_CASES)


# ---- reference -----------------------------------------------------------------------------
class IntType:
    def __init__(self, dtype):
        info = np.iinfo(dtype)
        self.dtype = dtype
        self.bits = info.bits
        self.signed = info.min < 0
        self.min, self.max = int(info.min), int(info.max)

    def wrap(self, v):
        v &= (1 << self.bits) - 1
        return v - (1 << self.bits) if self.signed and v > self.max else v

    def sat(self, v):
        return min(max(v, self.min), self.max)

    def u(self, v):
        return v & ((1 << self.bits) - 1)

    def reference(self, name, x, y, z, off, nbits):
        W = self.bits
        if name == "abs":
            return self.wrap(abs(x))
        if name == "absdiff":
            return abs(x - y)
        if name == "addsat":
            return self.sat(x + y)
        if name == "subsat":
            return self.sat(x - y)
        if name == "hadd":
            return (x + y) >> 1
        if name == "rhadd":
            return (x + y + 1) >> 1
        if name == "mulhi":
            return (x * y) >> W
        if name == "madhi":
            return self.wrap(((x * y) >> W) + z)
        if name == "madsat":
            return self.sat(x * y + z)
        if name == "clz":
            return W - self.u(x).bit_length()
        if name == "ctz":
            ux = self.u(x)
            return W if ux == 0 else (ux & -ux).bit_length() - 1
        if name == "popcount":
            return bin(self.u(x)).count("1")
        if name == "reverse_bits":
            return self.wrap(int(format(self.u(x), f"0{W}b")[::-1], 2))
        if name == "rotate":
            s, ux = self.u(y) % W, self.u(x)
            return self.wrap((ux << s) | (ux >> (W - s)))
        if name == "extract_bits":
            if nbits == 0:
                return 0
            field = (self.u(x) >> off) & ((1 << nbits) - 1)
            if self.signed and field >> (nbits - 1):
                field -= 1 << nbits
            return field
        if name == "insert_bits":
            mask = ((1 << nbits) - 1) << off
            return self.wrap((self.u(x) & ~mask) | ((self.u(y) << off) & mask))
        if name == "min":
            return min(x, y)
        if name == "max":
            return max(x, y)
        if name == "clamp":
            return min(max(x, min(y, z)), max(y, z))
        if name == "min3":
            return min(x, y, z)
        if name == "max3":
            return max(x, y, z)
        if name == "median3":
            return sorted((x, y, z))[1]
        raise AssertionError(name)


def sample_values(dtype, count, seed):
    """Edge values in every (x, y) pairing, then random values over the whole range."""
    t = IntType(dtype)
    edges = sorted({0, 1, 2, t.max, t.max - 1, t.max >> 1, (t.max >> 1) + 1} |
                   ({-1, -2, t.min, t.min + 1} if t.signed else set()))
    rng = np.random.default_rng(seed)
    rand = lambda n: [int(v) for v in rng.integers(t.min, t.max, size=n, dtype=dtype, endpoint=True)]
    x = [e for e in edges for _ in edges]
    y = [e for _ in edges for e in edges]
    x += rand(count - len(x))
    y += rand(count - len(y))
    z = [edges[k % len(edges)] if k % 3 == 0 else v for k, v in enumerate(rand(count))]
    return [np.array(v, dtype=dtype) for v in (x, y, z)]


def bit_fields(bits, count, seed):
    """(offset, bits) pairs with offset + bits <= width, including 0 bits and the full width."""
    rng = np.random.default_rng(seed)
    nbits = rng.integers(0, bits, size=count, endpoint=True)
    nbits[:4] = [0, bits, 1, bits - 1]
    off = np.array([rng.integers(0, bits - n, endpoint=True) for n in nbits])
    off[:4] = [3, 0, bits - 1, 1]
    return off.astype(np.uint32), nbits.astype(np.uint32)


@pytest.fixture(scope="module")
def integer_lib():
    return mps_shim.compile_shader(INTEGER_SOURCE)


def run_and_check(kernel, metal_type, lanes, seed):
    dtype, utype = INT_TYPES[metal_type][0], INT_TYPES[INT_TYPES[metal_type][1]][0]
    t = IntType(dtype)
    count = N * lanes
    x, y, z = sample_values(dtype, count, seed)
    off, nbits = bit_fields(t.bits, N, seed + 1)
    out = np.zeros((N, len(FUNCTIONS), lanes), dtype)
    diff = np.zeros((N, lanes), utype)
    kernel(out, diff, x, y, z, off, nbits, threads=N)

    xs, ys, zs = (v.reshape(N, lanes).tolist() for v in (x, y, z))
    for f, name in enumerate(FUNCTIONS + ["absdiff"]):
        got = diff if name == "absdiff" else out[:, f, :]
        want = np.array([[t.reference(name, xs[i][k], ys[i][k], zs[i][k], int(off[i]), int(nbits[i]))
                          for k in range(lanes)] for i in range(N)], dtype=utype if name == "absdiff" else dtype)
        bad = np.argwhere(got != want)
        if bad.size:
            i, k = bad[0]
            pytest.fail(f"{metal_type}{lanes if lanes > 1 else ''} {name}: x={xs[i][k]} y={ys[i][k]} z={zs[i][k]} "
                        f"offset={off[i]} bits={nbits[i]}: got {got[i, k]}, want {want[i, k]} "
                        f"({len(bad)} lanes differ)")


@pytest.mark.parametrize("metal_type", list(INT_TYPES))
def test_scalar_integer_functions(integer_lib, metal_type):
    run_and_check(getattr(integer_lib, f"scalar_{metal_type}"), metal_type, 1, seed=list(INT_TYPES).index(metal_type))


@pytest.mark.parametrize("metal_type,lanes", VECTOR_CASES, ids=[f"{t}{n}" for t, n in VECTOR_CASES])
def test_vector_integer_functions(integer_lib, metal_type, lanes):
    run_and_check(getattr(integer_lib, f"vector_{metal_type}{lanes}"), metal_type, lanes, seed=100 + lanes)


# ---- overload resolution, mul24/mad24, limits, traits, array -------------------------------
MISC_SOURCE = PRELUDE + r"""
// Return types are Metal's: absdiff is unsigned, the rest keep the operand type.
static_assert(metal::is_same_v<decltype(absdiff(char(1), char(2))), uchar>, "");
static_assert(metal::is_same_v<decltype(absdiff(int4(1), int4(2))), uint4>, "");
static_assert(metal::is_same_v<decltype(absdiff(long2(1), long2(2))), ulong2>, "");
static_assert(metal::is_same_v<decltype(abs(short(-1))), short>, "");
static_assert(metal::is_same_v<decltype(abs(int8_t(-1))), int8_t>, "");
static_assert(metal::is_same_v<decltype(hadd(uchar(1), uchar(2))), uchar>, "");
static_assert(metal::is_same_v<decltype(clz(ulong(1))), ulong>, "");
static_assert(metal::is_same_v<decltype(popcount(ushort3(1))), ushort3>, "");
static_assert(metal::is_same_v<decltype(mul24(2, 3)), int>, "");
static_assert(metal::is_same_v<decltype(mad24(2u, 3u, 4u)), uint>, "");

kernel void mixed(device int* out [[buffer(0)]], constant int* v [[buffer(1)]], uint i [[thread_position_in_grid]]) {
    const int4 a = load<int, 4>(v + 4 * i);
    device int* o = out + 16 * i;
    store(o + 0, clamp(a, 0, 10));          // scalars broadcast to int4
    store(o + 4, as_type<int4>(max(as_type<uint4>(a), 3u)));
    store(o + 8, hadd(a, 1));
    store(o + 12, metal::min(a, int4(5)) + int4(abs(int8_t(-7))));
}

// Swizzles convert to the one vector overload that takes their lane count and type.
kernel void swizzled(device int* out [[buffer(0)]], constant int* v [[buffer(1)]],
                     uint i [[thread_position_in_grid]]) {
    const int4 a = load<int, 4>(v + 4 * i);
    device int* o = out + 12 * i;
    store(o + 0, hadd(a.xy, a.zw));
    store(o + 2, clamp(a.zyx, 0, 10));
    store(o + 5, metal::max3(a.x, a.y, a.z));
    store(o + 6, as_type<int2>(absdiff(a.xw, a.yz)));
    store(o + 8, as_type<int4>(rotate(as_type<uint4>(a).wzyx, uint4(1))));
}

kernel void mul24s(device int* si [[buffer(0)]], device uint* ui [[buffer(1)]],
                   constant int* a [[buffer(2)]], constant int* b [[buffer(3)]], constant int* c [[buffer(4)]],
                   constant uint* ua [[buffer(5)]], constant uint* ub [[buffer(6)]], constant uint* uc [[buffer(7)]],
                   uint i [[thread_position_in_grid]]) {
    si[4 * i + 0] = mul24(a[i], b[i]);
    si[4 * i + 1] = mad24(a[i], b[i], c[i]);
    si[4 * i + 2] = mul24(int4(a[i]), int4(b[i]))[1];
    si[4 * i + 3] = mad24(int2(a[i]), int2(b[i]), int2(c[i]))[0];
    ui[4 * i + 0] = mul24(ua[i], ub[i]);
    ui[4 * i + 1] = mad24(ua[i], ub[i], uc[i]);
    ui[4 * i + 2] = mul24(uint3(ua[i]), uint3(ub[i]))[2];
    ui[4 * i + 3] = mad24(uint4(ua[i]), uint4(ub[i]), uint4(uc[i]))[3];
}

// numeric_limits is usable in constant expressions.
constant constexpr half kHalfMax = metal::numeric_limits<half>::max();
static_assert(kHalfMax == half(65504.0f), "");
static_assert(metal::numeric_limits<int>::max() == 2147483647, "");
static_assert(metal::numeric_limits<ulong>::max() == 0xffffffffffffffffUL, "");
static_assert(metal::numeric_limits<const half>::digits == 11, "");

#define FLIMITS(T) metal::numeric_limits<T>::max(), metal::numeric_limits<T>::min(), \
    metal::numeric_limits<T>::lowest(), metal::numeric_limits<T>::epsilon(), \
    metal::numeric_limits<T>::denorm_min(), metal::numeric_limits<T>::infinity(), \
    metal::numeric_limits<T>::round_error(), metal::numeric_limits<T>::quiet_NaN()
#define ILIMITS(T) metal::numeric_limits<T>::min(), metal::numeric_limits<T>::max()
#define INFO(T) metal::numeric_limits<T>::digits, int(metal::numeric_limits<T>::is_signed), \
    int(metal::numeric_limits<T>::is_integer), int(metal::numeric_limits<T>::has_infinity)

kernel void limits(device float* f [[buffer(0)]], device half* h [[buffer(1)]], device ushort* bf [[buffer(2)]],
                   device long* sl [[buffer(3)]], device ulong* ul [[buffer(4)]], device int* info [[buffer(5)]],
                   uint i [[thread_position_in_grid]]) {
    const float fv[] = {FLIMITS(float)};
    const half hv[] = {FLIMITS(half)};
    const bfloat bv[] = {FLIMITS(bfloat)};
    for (int k = 0; k < 8; ++k) {
        f[k] = fv[k];
        h[k] = hv[k];
        bf[k] = as_type<ushort>(bv[k]);
    }
    const long sv[] = {ILIMITS(char), ILIMITS(short), ILIMITS(int), ILIMITS(long)};
    const ulong uv[] = {ILIMITS(uchar), ILIMITS(ushort), ILIMITS(uint), ILIMITS(ulong)};
    const int iv[] = {INFO(char), INFO(uchar), INFO(short), INFO(ushort), INFO(int), INFO(uint), INFO(long),
                      INFO(ulong), INFO(float), INFO(half), INFO(bfloat)};
    for (int k = 0; k < 8; ++k) {
        sl[k] = sv[k];
        ul[k] = uv[k];
    }
    for (int k = 0; k < 44; ++k) info[k] = iv[k];
}

// Type traits: half and bfloat are floating point.
static_assert(metal::is_floating_point_v<half> && metal::is_floating_point<bfloat>::value, "");
static_assert(metal::is_floating_point_v<float> && metal::is_floating_point_v<const half>, "");
static_assert(!metal::is_floating_point_v<int> && !metal::is_floating_point_v<float4>, "");
static_assert(metal::is_arithmetic_v<half> && metal::is_arithmetic_v<bfloat> && metal::is_arithmetic_v<uint>, "");
static_assert(metal::is_signed_v<half> && metal::is_signed_v<bfloat> && metal::is_signed_v<char>, "");
static_assert(!metal::is_unsigned_v<half> && metal::is_unsigned_v<uchar> && !metal::is_signed_v<ulong>, "");
static_assert(metal::is_integral_v<long> && metal::is_integral_v<ushort> && !metal::is_integral_v<half>, "");
static_assert(metal::is_scalar_v<half> && metal::is_scalar_v<bfloat> && metal::is_scalar_v<int>, "");
static_assert(!metal::is_scalar_v<float4> && !metal::is_arithmetic_v<int2>, "");
static_assert(metal::is_vector<float4>::value && metal::is_vector_v<bool2> && !metal::is_vector_v<half>, "");
static_assert(metal::vec_elements<half3>::value == 3 && metal::vec_elements<ulong2>::value == 2, "");
static_assert(metal::is_same_v<metal::make_signed_t<uint>, int>, "");
static_assert(metal::is_same_v<metal::make_signed_t<uchar>, char>, "");
static_assert(metal::is_same_v<metal::make_unsigned_t<long>, ulong>, "");
static_assert(metal::is_same_v<metal::make_unsigned_t<char>, uchar>, "");
static_assert(metal::is_same_v<metal::make_signed_t<ushort4>, short4>, "");
static_assert(metal::is_same_v<metal::make_unsigned_t<int3>, uint3>, "");
static_assert(metal::is_same_v<metal::make_unsigned_t<const long2>, const ulong2>, "");
static_assert(metal::is_same_v<metal::remove_cv_t<const volatile int>, int>, "");
static_assert(metal::is_same_v<metal::remove_reference_t<float&>, float>, "");
static_assert(metal::is_same_v<metal::decay_t<const half&>, half>, "");
static_assert(metal::is_same_v<metal::conditional_t<true, int, float>, int>, "");
static_assert(metal::is_same_v<metal::enable_if_t<true, half>, half>, "");
static_assert(metal::is_convertible_v<int, float> && !metal::is_convertible_v<float4, float>, "");
static_assert(metal::integral_constant<int, 3>::value == 3 && metal::true_type::value, "");
static_assert(!metal::false_type::value && !metal::is_same_v<int, uint>, "");
static_assert(metal::is_same_v<decltype(metal::declval<int4>() + metal::declval<int4>()), int4>, "");

template <typename T, typename = metal::enable_if_t<metal::is_floating_point_v<T>>>
T twice(T x) { return x + x; }
template <typename T, typename = metal::enable_if_t<metal::is_integral_v<T>>, typename = void>
T twice(T x) { return x * T(3); }  // integers: thrice, to tell the overloads apart

float total(metal::array_ref<float> r) {
    float s = 0.0f;
    for (uint k = 0; k < r.size(); ++k) s += r[k];
    return s;
}

kernel void arrays(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
    metal::array<float, 3> a = {1.0f, 2.0f, float(i)};
    a[0] += 10.0f;
    float s = 0.0f;
    for (float v : a) s += v;
    const float raw[2] = {5.0f, 6.0f};
    out[6 * i + 0] = s;
    out[6 * i + 1] = float(a.size());
    out[6 * i + 2] = total(a);
    out[6 * i + 3] = total(metal::make_array_ref(raw)) + total(raw);
    out[6 * i + 4] = float(twice(half(1.5h))) + float(twice(bfloat(2.0f)));
    out[6 * i + 5] = float(twice(int(i)));
}
"""


@pytest.fixture(scope="module")
def misc_lib():
    return mps_shim.compile_shader(MISC_SOURCE)


def test_overloads_accept_scalars_for_vectors(misc_lib):
    rng = np.random.default_rng(7)
    v = rng.integers(-20, 20, size=(64, 4), dtype=np.int32)
    v[0] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max, -1, 0]
    out = np.zeros((64, 16), np.int32)
    misc_lib.mixed(out, v, threads=64)
    np.testing.assert_array_equal(out[:, 0:4], np.clip(v, 0, 10))
    np.testing.assert_array_equal(out[:, 4:8], np.maximum(v.view(np.uint32), 3).view(np.int32))
    np.testing.assert_array_equal(out[:, 8:12], ((v.astype(np.int64) + 1) >> 1).astype(np.int32))
    np.testing.assert_array_equal(out[:, 12:16], np.minimum(v, 5).astype(np.int64) + 7)


def test_overloads_accept_swizzles(misc_lib):
    rng = np.random.default_rng(9)
    v = rng.integers(-2**31, 2**31, size=(64, 4), dtype=np.int64)
    v[1] = [-5, 3, 12, 7]
    out = np.zeros((64, 12), np.int32)
    misc_lib.swizzled(out, v.astype(np.int32), threads=64)
    np.testing.assert_array_equal(out[:, 0:2], (v[:, 0:2] + v[:, 2:4]) >> 1)
    np.testing.assert_array_equal(out[:, 2:5], np.clip(v[:, 2::-1], 0, 10))
    np.testing.assert_array_equal(out[:, 5], v[:, 0:3].max(axis=1))
    np.testing.assert_array_equal(out[:, 6:8].view(np.uint32), np.abs(v[:, [0, 3]] - v[:, [1, 2]]))
    u = v[:, ::-1] % 2**32
    np.testing.assert_array_equal(out[:, 8:12].view(np.uint32), ((u << 1) | (u >> 31)) % 2**32)


def test_mul24_mad24(misc_lib):
    rng = np.random.default_rng(8)
    n = 128
    a, b, c = (rng.integers(-2**23, 2**23, size=n, dtype=np.int64) for _ in range(3))
    ua, ub, uc = (rng.integers(0, 2**24, size=n, dtype=np.int64) for _ in range(3))
    a[:4], b[:4] = [-2**23, 2**23 - 1, -1, 0], [-2**23, 2**23 - 1, 2**23 - 1, -2**23]
    ua[:2], ub[:2] = [2**24 - 1, 0], [2**24 - 1, 2**24 - 1]
    c[0], uc[0] = 2**31 - 1, 2**32 - 1  # the sum wraps in 32 bits
    si, ui = np.zeros((n, 4), np.int32), np.zeros((n, 4), np.uint32)
    misc_lib.mul24s(si, ui, *(v.astype(np.int32) for v in (a, b, c)), *(v.astype(np.uint32) for v in (ua, ub, uc)),
                    threads=n)
    wrap_s = lambda v: ((v + 2**31) % 2**32 - 2**31).astype(np.int32)
    wrap_u = lambda v: (v % 2**32).astype(np.uint32)
    for k, want in enumerate([a * b, a * b + c, a * b, a * b + c]):
        np.testing.assert_array_equal(si[:, k], wrap_s(want), err_msg=f"int column {k}")
    for k, want in enumerate([ua * ub, ua * ub + uc, ua * ub, ua * ub + uc]):
        np.testing.assert_array_equal(ui[:, k], wrap_u(want), err_msg=f"uint column {k}")


def test_numeric_limits(misc_lib):
    f, h, bf = np.zeros(8, np.float32), np.zeros(8, np.float16), np.zeros(8, np.uint16)
    sl, ul, info = np.zeros(8, np.int64), np.zeros(8, np.uint64), np.zeros(44, np.int32)
    misc_lib.limits(f, h, bf, sl, ul, info, threads=1)
    for got, dtype in ((f, np.float32), (h, np.float16)):
        fi = np.finfo(dtype)
        np.testing.assert_array_equal(got[:7], np.array([fi.max, fi.smallest_normal, fi.min, fi.eps,
                                                         fi.smallest_subnormal, np.inf, 0.5], dtype))
        assert np.isnan(got[7])
    assert [hex(v) for v in bf[:7]] == [hex(v) for v in (0x7F7F, 0x0080, 0xFF7F, 0x3C00, 0x0001, 0x7F80, 0x3F00)]
    assert bf[7] & 0x7F80 == 0x7F80 and bf[7] & 0x7F  # a NaN
    bf_floats = (bf[:7].astype(np.uint32) << 16).view(np.float32)
    bf_max = float.fromhex("0x1.fep127")
    assert bf_floats.tolist() == [bf_max, 2.0**-126, -bf_max, 2.0**-7, 2.0**-133, np.inf, 0.5]
    want_s, want_u = [], []
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        want_s += [np.iinfo(dtype).min, np.iinfo(dtype).max]
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        want_u += [0, np.iinfo(dtype).max]
    assert sl.tolist() == want_s and ul.tolist() == want_u
    # digits, is_signed, is_integer, has_infinity
    assert info.reshape(11, 4).tolist() == [
        [7, 1, 1, 0], [8, 0, 1, 0], [15, 1, 1, 0], [16, 0, 1, 0], [31, 1, 1, 0], [32, 0, 1, 0], [63, 1, 1, 0],
        [64, 0, 1, 0], [24, 1, 0, 1], [11, 1, 0, 1], [8, 1, 0, 1]]


def test_array_and_traits(misc_lib):
    out = np.zeros((8, 6), np.float32)
    misc_lib.arrays(out, threads=8)
    i = np.arange(8, dtype=np.float32)
    np.testing.assert_array_equal(out[:, 0], 13 + i)
    np.testing.assert_array_equal(out[:, 1], 3)
    np.testing.assert_array_equal(out[:, 2], 13 + i)
    np.testing.assert_array_equal(out[:, 3], 22)
    np.testing.assert_array_equal(out[:, 4], 3.0 + 4.0)
    np.testing.assert_array_equal(out[:, 5], 3 * i)


@pytest.mark.parametrize("body,message", [
    ('static_assert(metal::is_integral_v<half>, "half is not an integer");', "half is not an integer"),
    ('static_assert(!metal::is_floating_point_v<bfloat>, "bfloat is floating point");', "bfloat is floating point"),
    # Metal's integer functions are non-template overloads: uint with int matches none exactly.
    ("uint f(uint x) { return min(x, 7); }", "ambiguous|more than one instance of overloaded function"),
])
def test_rejected(body, message):
    source = "#include <metal_stdlib>\nusing namespace metal;\n" + body + (
        "\nkernel void k(device int* o [[buffer(0)]], uint i [[thread_position_in_grid]]) { o[i] = 0; }\n")
    with pytest.raises(mps_shim.CompileError, match=message):
        mps_shim.compile_shader(source)
