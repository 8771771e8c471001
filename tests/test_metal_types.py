"""Conformance: Metal's scalar, vector and matrix types, literals and conversions.

Each kernel is written for the test and checked against numpy or hand-computed
values, following the Metal Shading Language Specification's rules.
"""
import numpy as np
import pytest

import mps_shim

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

constant float3x3 M = float3x3(float3(1, 2, 3), float3(4, 5, 6), float3(7, 8, 10));
constant float WEIGHTS[3] = {0.5, 1.5, 2.5};
constant int OFFSET = 7;

// sizes and alignments Metal defines, written out lane by lane
kernel void layout(device uint* out, uint i [[thread_position_in_grid]]) {
    out[0] = sizeof(char);    out[1] = sizeof(short);  out[2] = sizeof(int);     out[3] = sizeof(long);
    out[4] = sizeof(half);    out[5] = sizeof(bfloat); out[6] = sizeof(float);   out[7] = sizeof(float2);
    out[8] = sizeof(float3);  out[9] = alignof(float3); out[10] = sizeof(float4); out[11] = sizeof(packed_float3);
    out[12] = sizeof(half3);  out[13] = sizeof(float3x3); out[14] = sizeof(uchar4); out[15] = sizeof(bool4);
    out[16] = sizeof(size_t); out[17] = sizeof(ptrdiff_t); out[18] = sizeof(bfloat16_t); out[19] = char(-1) < 0;
}

kernel void swizzles(device float4* out, constant float4* in, uint i [[thread_position_in_grid]]) {
    const float4 v = in[i];
    float4 r = v.wzyx;               // reversed read
    r.xy = v.yx * 2.0;               // write through a two-lane swizzle
    r.zw += v.xx;                    // compound assignment on a swizzle
    out[4 * i + 0] = r;
    out[4 * i + 1] = v.rrgg;         // rgba names, repeated lanes on read
    out[4 * i + 2] = float4(v.xy, v.z, 1.0f);    // mixed constructor
    out[4 * i + 3] = float4(float3(v.zyx), v.w) + float4{1, 2, 3, 4};   // brace initialisation
}

kernel void arithmetic(device float4* out, constant float4* a, constant float4* b, uint i [[thread_position_in_grid]]) {
    out[5 * i + 0] = a[i] + b[i] * 2;            // scalar broadcast from an int
    out[5 * i + 1] = 1.0f - a[i] / b[i];
    out[5 * i + 2] = -a[i];
    out[5 * i + 3] = float4(a[i] < b[i]);        // comparisons give bool vectors
    float4 c = a[i];
    c *= 3.0f;
    c -= b[i];
    out[5 * i + 4] = c;
}

kernel void integer_vectors(device int4* out, constant int4* a, constant int4* b, uint i [[thread_position_in_grid]]) {
    out[6 * i + 0] = a[i] % b[i];
    out[6 * i + 1] = a[i] & b[i];
    out[6 * i + 2] = a[i] << 2;
    out[6 * i + 3] = ~a[i];
    out[6 * i + 4] = int4(a[i] == b[i]) + int4(!(a[i] > 0));
    out[6 * i + 5] = a[i] ^ b[i] | int4(1, 0, 0, 0);
}

kernel void conversions(device float* out, constant float4* f, uint i [[thread_position_in_grid]]) {
    const int4 truncated = int4(f[i]);                 // explicit element conversion truncates
    const float4 back = static_cast<float4>(truncated);
    const uint bits = as_type<uint>(f[i].x);           // bit cast
    const half2 h = as_type<half2>(bits);
    out[8 * i + 0] = back.x;
    out[8 * i + 1] = back.w;
    out[8 * i + 2] = float(bits >> 16);
    out[8 * i + 3] = float(as_type<ushort2>(h).y);
    out[8 * i + 4] = float(uchar(300 + int(i)));       // wraps like C
    out[8 * i + 5] = float(char(200));                 // char is signed
    out[8 * i + 6] = float(bool(2));
    out[8 * i + 7] = float(long(1) << 40) / float(1ul << 40);
}

kernel void literals(device float* out, uint i [[thread_position_in_grid]]) {
    out[0] = sizeof(1.5);                  // unsuffixed floating literal is float
    out[1] = sizeof(1.5h);                 // h suffix is half
    out[2] = sizeof(2u);                   // u suffix is uint
    out[3] = 1.0 / 3.0;                    // computed in float, not double
    out[4] = float(0x1p-3);
    out[5] = sizeof(1e3);
    out[6] = 1.0h / 3.0h;                  // computed in half
    out[7] = float(OFFSET) + WEIGHTS[2];
}

kernel void half_math(device half* out, constant half* a, constant half* b, uint i [[thread_position_in_grid]]) {
    half t = a[i] + b[i];                  // each operation rounds to half
    out[i] = t * a[i] - b[i];
}

kernel void bfloat_math(device bfloat* out, constant bfloat* a, constant bfloat* b, uint i [[thread_position_in_grid]]) {
    bfloat t = a[i] + b[i];
    out[i] = t * a[i];
}

kernel void bfloat_vector_splats(device float4* out, uint i [[thread_position_in_grid]]) {
    bfloat4 v = 0;                         // an int splat: int -> bfloat is a class conversion of its own
    out[3 * i + 0] = float4(v);
    v = int(i) + 2;
    out[3 * i + 1] = float4(v);
    bfloat2 w = short(-3);
    v.xy = w;
    out[3 * i + 2] = float4(v);
}

// `?:` with a literal 0 operand takes the other operand's type, as Metal's usual arithmetic
// conversions give it for a bfloat or a vector (C++ rejects `c ? bfloat : 0`).
enum Lanes { four = 4 };
kernel void conditional_literals(device float* out, constant bfloat* b, constant half* h, constant ushort* u,
                                 uint i [[thread_position_in_grid]]) {
    const bool odd = i % 2 == 1;
    out[8 * i + 0] = odd ? b[i] : 0;
    out[8 * i + 1] = 2 > i ? 0 : b[i] * b[i];
    const bfloat4 v = odd ? bfloat4(b[i]) : 0;
    out[8 * i + 2] = v.w;
    out[8 * i + 3] = odd ? h[i] : 0;
    out[8 * i + 4] = odd ? u[i] : -1;                  // not rewritten: int -1, not ushort 65535
    out[8 * i + 5] = sizeof(odd ? b[i] : 0) + 10 * sizeof(odd ? 0 : v);
    constant half* p = odd ? h : 0;
    out[8 * i + 6] = p ? 1 : 0;
    out[8 * i + 7] = odd ? uint(i) : 0;
    out[8 * i + 7] += odd ? 0 : four;
}

kernel void matrices(device float4* out, constant float4* v, uint i [[thread_position_in_grid]]) {
    const float4x4 m = float4x4(float4(1, 0, 0, 0), float4(0, 2, 0, 0), float4(0, 0, 3, 0), float4(1, 1, 1, 1));
    const float2x3 n = float2x3(1, 2, 3, 4, 5, 6);   // column-major scalars
    const float3x2 nt = transpose(n);
    out[4 * i + 0] = m * v[i];
    out[4 * i + 1] = v[i] * m;
    out[4 * i + 2] = float4(M * v[i].xyz, determinant(M));
    out[4 * i + 3] = float4((n * nt)[1], n[1][2]) + float4(float3x3(2.0f)[2], 0);
}

kernel void packed(device packed_float3* out, constant packed_float3* in, uint i [[thread_position_in_grid]]) {
    float3 v = in[i];
    out[i] = v.zxy + 1.0f;
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


def test_sizes_and_alignments(lib):
    out = np.zeros(20, np.uint32)
    lib.layout(out, threads=1)
    assert out.tolist() == [1, 2, 4, 8, 2, 2, 4, 8, 16, 16, 16, 12, 8, 48, 4, 4, 8, 8, 2, 1]


def test_swizzles_read_write_and_constructors(lib):
    v = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    out = np.zeros((12, 4), np.float32)
    lib.swizzles(out, v, threads=3)
    for i, (x, y, z, w) in enumerate(v):
        np.testing.assert_array_equal(out[4 * i], [2 * y, 2 * x, y + x, x + x])
        np.testing.assert_array_equal(out[4 * i + 1], [x, x, y, y])
        np.testing.assert_array_equal(out[4 * i + 2], [x, y, z, 1])
        np.testing.assert_array_equal(out[4 * i + 3], [z + 1, y + 2, x + 3, w + 4])


def test_component_wise_arithmetic_and_broadcast(lib):
    rng = np.random.default_rng(1)
    a = rng.uniform(-2, 2, (50, 4)).astype(np.float32)
    b = rng.uniform(0.5, 2, (50, 4)).astype(np.float32)
    out = np.zeros((250, 4), np.float32)
    lib.arithmetic(out, a, b, threads=50)
    out = out.reshape(50, 5, 4)
    np.testing.assert_array_equal(out[:, 0], a + b * np.float32(2))
    np.testing.assert_array_equal(out[:, 1], np.float32(1) - a / b)
    np.testing.assert_array_equal(out[:, 2], -a)
    np.testing.assert_array_equal(out[:, 3], (a < b).astype(np.float32))
    # Metal may contract c * 3 - b into one fma: either rounding is conforming.
    separate = a * np.float32(3) - b
    fused = (a.astype(np.float64) * 3 - b).astype(np.float32)
    assert np.all((out[:, 4] == separate) | (out[:, 4] == fused))


def test_integer_vector_operators(lib):
    a = np.array([[7, -7, 12, 0], [5, 9, -1, 3]], np.int32)
    b = np.array([[3, 3, 5, 4], [5, 2, 7, 3]], np.int32)
    out = np.zeros((12, 4), np.int32)
    lib.integer_vectors(out, a, b, threads=2)
    out = out.reshape(2, 6, 4)
    np.testing.assert_array_equal(out[:, 0], np.fmod(a, b))  # C remainder truncates toward zero
    np.testing.assert_array_equal(out[:, 1], a & b)
    np.testing.assert_array_equal(out[:, 2], a << 2)
    np.testing.assert_array_equal(out[:, 3], ~a)
    np.testing.assert_array_equal(out[:, 4], (a == b).astype(np.int32) + (~(a > 0)).astype(np.int32))
    np.testing.assert_array_equal(out[:, 5], (a ^ b) | np.array([1, 0, 0, 0], np.int32))


def test_conversions_and_bit_casts(lib):
    f = np.array([[2.75, -1.5, 3.99, -8.25], [-0.5, 100.9, 7.0, 1e6]], np.float32)
    out = np.zeros(16, np.float32)
    lib.conversions(out, f, threads=2)
    out = out.reshape(2, 8)
    np.testing.assert_array_equal(out[:, 0], np.trunc(f[:, 0]))
    np.testing.assert_array_equal(out[:, 1], np.trunc(f[:, 3]))
    bits = f[:, 0].view(np.uint32)
    np.testing.assert_array_equal(out[:, 2], (bits >> 16).astype(np.float32))
    np.testing.assert_array_equal(out[:, 3], (bits >> 16).astype(np.float32))  # high half of the same bits
    np.testing.assert_array_equal(out[:, 4], [(300 + i) % 256 for i in range(2)])
    np.testing.assert_array_equal(out[:, 5], [-56, -56])
    np.testing.assert_array_equal(out[:, 6], [1, 1])
    np.testing.assert_array_equal(out[:, 7], [1, 1])


def test_literal_types_follow_metal(lib):
    out = np.zeros(8, np.float32)
    lib.literals(out, threads=1)
    assert out[:3].tolist() == [4, 2, 4]
    assert out[3] == np.float32(1) / np.float32(3)
    assert out[4] == 0.125
    assert out[5] == 4
    assert out[6] == np.float32(np.float16(1) / np.float16(3))
    assert out[7] == 9.5


def test_half_arithmetic_rounds_every_operation(lib):
    rng = np.random.default_rng(2)
    a = rng.uniform(-30, 30, 4096).astype(np.float16)
    b = rng.uniform(-30, 30, 4096).astype(np.float16)
    out = np.zeros_like(a)
    lib.half_math(out, a, b)
    t = (a + b).astype(np.float16)  # numpy rounds float16 results per operation too
    separate = (t * a).astype(np.float16) - b
    # Metal allows contracting t * a - b into one fused operation (rounded once); a CPU with native
    # half FMA (AVX512-FP16) does that, others round the product first. Either, element by element.
    fused = (t.astype(np.float64) * a.astype(np.float64) - b.astype(np.float64)).astype(np.float16)
    assert ((out == separate) | (out == fused)).all(), np.flatnonzero((out != separate) & (out != fused))[:5]
    assert not (out == 0).all()


def _to_bfloat_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (IEEE)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bfloat_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def test_bfloat_arithmetic_rounds_to_bfloat(lib):
    rng = np.random.default_rng(3)
    a_bits = _to_bfloat_bits(rng.uniform(-10, 10, 4096))
    b_bits = _to_bfloat_bits(rng.uniform(-10, 10, 4096))
    out = np.zeros(4096, np.uint16)
    a, b = _from_bfloat_bits(a_bits), _from_bfloat_bits(b_bits)
    lib.bfloat_math(mps_shim.Tensor.from_numpy(out).view((4096,)), a_bits, b_bits, threads=4096)
    t = _from_bfloat_bits(_to_bfloat_bits(a + b))
    np.testing.assert_array_equal(out, _to_bfloat_bits(t * a))


def test_bfloat_vectors_splat_integers(lib):
    out = np.zeros((4, 3, 4), np.float32)
    lib.bfloat_vector_splats(out, threads=4)
    i = np.arange(4, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(out[:, 0], np.zeros((4, 4)))
    np.testing.assert_array_equal(out[:, 1], np.broadcast_to(i + 2, (4, 4)))
    np.testing.assert_array_equal(out[:, 2], np.concatenate([np.full((4, 2), -3.0), np.broadcast_to(i + 2, (4, 2))], 1))


def test_conditional_with_a_literal_zero_takes_the_other_operands_type(lib):
    n = 4
    b_bits = _to_bfloat_bits(np.array([1.5, -2.25, 3.0, 0.5], np.float32))
    b = _from_bfloat_bits(b_bits)
    h = np.array([0.25, 8.5, -1.0, 2.0], np.float16)
    u = np.array([1, 65535, 3, 40000], np.uint16)
    out = np.zeros((n, 8), np.float32)
    lib.conditional_literals(out, b_bits, h, u, threads=n)
    odd = np.arange(n) % 2 == 1
    np.testing.assert_array_equal(out[:, 0], np.where(odd, b, 0))
    np.testing.assert_array_equal(out[:, 1], np.where(np.arange(n) < 2, 0, _from_bfloat_bits(_to_bfloat_bits(b * b))))
    np.testing.assert_array_equal(out[:, 2], np.where(odd, b, 0))
    np.testing.assert_array_equal(out[:, 3], np.where(odd, h.astype(np.float32), 0))
    np.testing.assert_array_equal(out[:, 4], np.where(odd, u.astype(np.int64), -1))
    np.testing.assert_array_equal(out[:, 5], np.full(n, 2 + 10 * 8))  # a bfloat, a bfloat4
    np.testing.assert_array_equal(out[:, 6], odd.astype(np.float32))
    np.testing.assert_array_equal(out[:, 7], np.where(odd, np.arange(n), 4))


def test_matrices(lib):
    v = np.array([[1, 2, 3, 4], [-1, 0.5, 2, 8]], np.float32)
    out = np.zeros((8, 4), np.float32)
    lib.matrices(out, v, threads=2)
    out = out.reshape(2, 4, 4)
    m = np.array([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [1, 1, 1, 1]], np.float32).T  # columns given
    big_m = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 10]], np.float32).T
    n = np.array([[1, 2, 3], [4, 5, 6]], np.float32).T  # 3 rows x 2 columns
    for i in range(2):
        np.testing.assert_allclose(out[i, 0], m @ v[i], rtol=1e-6)
        np.testing.assert_allclose(out[i, 1], v[i] @ m, rtol=1e-6)
        np.testing.assert_allclose(out[i, 2], [*(big_m @ v[i, :3]), np.linalg.det(big_m)], rtol=1e-5)
        prod = n @ n.T  # float2x3 * float3x2 -> float3x3; take column 1
        np.testing.assert_allclose(out[i, 3], [*(prod[:, 1] + [0, 0, 2]), 6], rtol=1e-6)


def test_packed_vectors_are_unpadded(lib):
    x = np.arange(15, dtype=np.float32)
    out = np.zeros(15, np.float32)
    lib.packed(out, x, threads=5)
    v = x.reshape(5, 3)
    np.testing.assert_array_equal(out.reshape(5, 3), v[:, [2, 0, 1]] + 1)


@pytest.mark.parametrize("body, construct", [
    ("texture2d<float> t [[texture(0)]], uint i [[thread_position_in_grid]]", "texture"),
    ("device float* o, uint i [[thread_position_in_grid]]) { sampler s; (void)s; } void g(", "sampler"),
    ("device float* o, uint i [[thread_position_in_grid]]) { imageblock<float> m; } void g(", "image block"),
])
def test_unsupported_constructs_name_the_construct_and_line(body, construct):
    source = "#include <metal_stdlib>\nusing namespace metal;\n\nkernel void f(" + body + ") {}\n"
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_shader(source)
    message = str(info.value)
    assert "library.metal:4" in message
    assert construct in message


def test_assigning_a_repeated_swizzle_is_a_compile_error():
    source = ("kernel void f(device float4* o, uint i [[thread_position_in_grid]]) {\n"
              "  float4 v = o[i];\n  v.xx = float2(1, 2);\n  o[i] = v;\n}\n")
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_shader(source)
    assert "library.metal:3" in str(info.value)


DECLARATIONS = r"""
#include <metal_stdlib>
#include <metal_math>
#include <metal_atomic>
using namespace metal;

#if !defined(__METAL__) || __METAL_VERSION__ < 310
#error "Metal 3.1 or newer must be reported"
#endif

// Overloads on the address space of a pointer parameter and of `this`.
float first(device const float* p) { return p[0]; }
float first(constant float* p) { return p[0]; }
float first(thread const float* p) { return p[0]; }
float first(device const int* p) { return float(p[0]) + 100.0f; }   // a genuine overload on the type

struct Box {
    float v;
    METAL_FUNC float twice() const device { return v * 2; }
    METAL_FUNC float twice() const constant { return v * 2; }
    METAL_FUNC float twice() const thread { return v * 2; }
};

kernel void spaces(device float* out, constant float* a, const device Box* boxes, device const float* c,
                   device const int* n, uint i [[thread_position_in_grid]]) {
    float local[1] = {3.0};
    thread float* lp = local;
    float sum = 0;
    #pragma unroll
    for (int k = 0; k < 4; ++k) {
        sum += float(k);
    }
    out[i] = first(a + i) + first(c + i) + first(lp) + boxes[i].twice() + first(n + i) + sum;
}
"""


def test_address_space_overloads_and_qualifier_positions():
    lib = mps_shim.compile_shader(DECLARATIONS)
    a = np.arange(4, dtype=np.float32)
    c = np.arange(4, dtype=np.float32) * 10
    boxes = np.arange(4, dtype=np.float32) + 0.5
    n = np.arange(4, dtype=np.int32) * 1000
    out = np.ones(4, np.float32)
    lib.spaces(out, a, boxes, c, n)
    np.testing.assert_array_equal(out, a + c + 3 + 2 * boxes + (n + 100) + 6)


def test_braced_vector_initialisers_fill_lanes_in_order():
    # MLX's random.metal: `uint4 ks = {key.x, key.y, key.x ^ key.y ^ 0x1BD11BDA};` (w is 0), as clang's
    # vector initialiser lists; a braced single scalar is the first lane, not a splat.
    lib = mps_shim.compile_shader("""
    #include <metal_stdlib>
    using namespace metal;
    kernel void braces(device uint4* out, device const uint2* key, uint i [[thread_position_in_grid]]) {
      const uint2 k = key[i];
      uint4 ks = {k.x, k.y, k.x ^ k.y ^ 0x1BD11BDA};
      float4 first = {2.5f};
      float2 ints = {3, 4};
      float3 whole = {float2(5, 6), 7.0f};
      out[3 * i] = ks;
      out[3 * i + 1] = uint4(first);
      out[3 * i + 2] = uint4(uint(ints.x), uint(ints.y), uint(whole.x), uint(whole.z));
    }
    """)
    key = np.array([[1, 2], [7, 9]], np.uint32)
    out = np.zeros((2, 3, 4), np.uint32)
    lib.braces(out, key, threads=2)
    for i, (a, b) in enumerate(key):
        assert out[i].tolist() == [[a, b, a ^ b ^ 0x1BD11BDA, 0], [2, 0, 0, 0], [3, 4, 5, 7]]


# MLX's steel/utils/type_traits.h: one specialisation per address space of a pointer, and its own
# metal::void_t (Apple's metal namespace has none).
POINTER_TRAITS = r"""
#include <metal_stdlib>
namespace metal {
template <typename... Ts> struct make_void { typedef void type; };
template <typename... Ts> using void_t = typename make_void<Ts...>::type;
template <typename T> struct pointer_element {};
template <typename T> struct pointer_element<thread T*> { using type = remove_cv_t<T>; };
template <typename T> struct pointer_element<device T*> { using type = remove_cv_t<T>; };
template <typename T> struct pointer_element<threadgroup T*> { using type = remove_cv_t<T>; };
}  // namespace metal
template <typename P, typename = metal::void_t<>> struct has_element : metal::false_type {};
template <typename P> struct has_element<P, metal::void_t<typename metal::pointer_element<P>::type>> : metal::true_type {};
kernel void traits(device int* out, device const short* p, uint i [[thread_position_in_grid]]) {
  typename metal::pointer_element<decltype(p)>::type v = p[i];
  out[i] = int(sizeof(v)) * 10 + int(has_element<decltype(p)>::value) + int(has_element<int>::value) * 100;
}
"""


def test_class_specialisations_on_address_spaces_are_one():
    lib = mps_shim.compile_shader(POINTER_TRAITS)
    out = np.zeros(2, np.int32)
    lib.traits(out, np.zeros(2, np.int16))
    assert out.tolist() == [21, 21]


@pytest.mark.parametrize("source, old, new, line", [
    (DECLARATIONS, "float first(constant float* p) { return p[0]; }", "float first(constant float* p) { return p[1]; }",
     13),
    (POINTER_TRAITS, "struct pointer_element<device T*> { using type = remove_cv_t<T>; }",
     "struct pointer_element<device T*> { using type = T; }", 8),
])
def test_address_space_overloads_with_different_bodies_are_rejected(source, old, new, line):
    # functions overloaded on address space, and class specialisations on one
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.compile_shader(source.replace(old, new))
    assert f"library.metal:{line}" in str(info.value) and "differ only in address space" in str(info.value)


# bfloat and the vector types are Metal built-ins: argument-dependent lookup
# from them finds no function of namespace metal, so a library's own function
# of the same name, called unqualified, is the only candidate (as on Apple;
# c10's reduction_utils.h calls simd_max(val) inside c10::metal, with bfloat).
SAME_NAMES = r"""
#include <metal_stdlib>

namespace user {
template <typename T> T simd_max(T v) { return ::metal::simd_max(v) + T(1); }
template <typename T> T fract(T v) { return v * T(2); }
template <typename T> T call_simd_max(T v) { return simd_max(v); }
template <typename T> T call_fract(T v) { return fract(v); }
}  // namespace user

kernel void same_names(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    const bfloat b = bfloat(x[i]);
    const float2 v = float2(x[i], -x[i]);
    out[4 * i + 0] = float(user::call_simd_max(b));
    out[4 * i + 1] = user::call_simd_max(v).y;
    out[4 * i + 2] = float(user::call_fract(b));
    out[4 * i + 3] = user::call_fract(half4(half(x[i]))).w;
}
"""


def test_metal_functions_are_not_found_through_bfloat_or_vector_arguments():
    lib = mps_shim.compile_shader(SAME_NAMES)
    x = np.arange(32, dtype=np.float32) * 0.25 + 0.5
    out = np.zeros((32, 4), np.float32)
    lib.same_names(out, x, threads=32)
    np.testing.assert_array_equal(out[:, 0], x.max() + 1)
    np.testing.assert_array_equal(out[:, 1], -x.min() + 1)
    np.testing.assert_array_equal(out[:, 2], 2 * x)
    np.testing.assert_array_equal(out[:, 3], 2 * x)


def test_uniform_values_behave_as_their_type():
    # MLX's gemv.h: loop bounds declared uniform<int>, made with make_uniform (a constexpr one too)
    lib = mps_shim.compile_shader("""
    #include <metal_uniform>
    using namespace metal;
    kernel void blocks(device int* out, constant int& n, uint i [[thread_position_in_grid]]) {
      constexpr const uniform<int> stride = make_uniform(4);
      const uniform<int> size = make_uniform(n);
      const uniform<int> full = size / stride;
      const uniform<int> rest = size - stride * full;
      int sum = 0;
      for (int b = 0; b < full; ++b) sum += stride;
      out[i] = sum * 100 + rest + int(i);
    }
    """)
    out = np.zeros(3, np.int32)
    lib.blocks(out, np.int32(11))
    assert out.tolist() == [803, 804, 805]
