"""Apple's metal_stdlib surface, as MLX's kernels rely on it.

- Metal has no math functions for bfloat: a bfloat converts to float and the
  float function returns a float. Libraries define their own bfloat overloads
  in namespace metal (MLX's bf16_math.h) on Apple's internal builtins
  (`__metal_fabs(x, __METAL_MAYBE_FAST_MATH__)`, `__metal_simd_sum(x)`).
- The `__metal_simd_*` builtins are Metal's SIMD-group functions to the
  translation: kernels calling wrappers of them wait like kernels calling
  simd_sum, and give the same results on both engines.
- With MLX's sources (/work/src/mlx, or MPS_SHIM_MLX_DIR), a few of its unary
  and binary kernels compile and match numpy.
"""
import os

import numpy as np
import pytest

import mps_shim

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)

# bfloat math and SIMD-group functions defined the way MLX's bf16_math.h defines them.
BF16_LIBRARY = r"""
#include <metal_stdlib>
using namespace metal;

#define my_math_funcs(itype, otype, ctype, mfast)                                              \
  METAL_FUNC otype abs(itype x) { return static_cast<otype>(__metal_fabs(static_cast<ctype>(x), mfast)); } \
  METAL_FUNC otype exp(itype x) { return static_cast<otype>(__metal_exp(static_cast<ctype>(x), mfast)); }  \
  METAL_FUNC otype sin(itype x) { return static_cast<otype>(__metal_sin(static_cast<ctype>(x), mfast)); }  \
  METAL_FUNC otype pow(itype x, itype y) {                                                     \
    return static_cast<otype>(__metal_pow(static_cast<ctype>(x), static_cast<ctype>(y), mfast));          \
  }                                                                                            \
  METAL_FUNC otype fma(itype x, itype y, itype z) {                                            \
    return static_cast<otype>(__metal_fma(static_cast<ctype>(x), static_cast<ctype>(y), static_cast<ctype>(z))); \
  }                                                                                            \
  METAL_FUNC otype max(itype x, itype y) {                                                     \
    return static_cast<otype>(__metal_fmax(static_cast<ctype>(x), static_cast<ctype>(y), mfast));         \
  }

namespace metal {
my_math_funcs(bfloat16_t, bfloat16_t, float, __METAL_MAYBE_FAST_MATH__);
namespace fast { my_math_funcs(bfloat16_t, bfloat16_t, float, __METAL_FAST_MATH__); }
namespace precise { my_math_funcs(bfloat16_t, bfloat16_t, float, __METAL_PRECISE_MATH__); }

METAL_FUNC bfloat16_t simd_sum(bfloat16_t x) { return static_cast<bfloat16_t>(__metal_simd_sum(static_cast<float>(x))); }
METAL_FUNC bfloat16_t simd_max(bfloat16_t x) { return static_cast<bfloat16_t>(__metal_simd_max(static_cast<float>(x))); }
METAL_FUNC bfloat16_t simd_shuffle_down(bfloat16_t x, ushort d) {
  return as_type<bfloat16_t>(__metal_simd_shuffle_down(as_type<uint16_t>(x), d));
}
METAL_FUNC bfloat16_t simd_prefix_inclusive_sum(bfloat16_t x) {
  return static_cast<bfloat16_t>(__metal_simd_prefix_inclusive_sum(static_cast<float>(x)));
}
}  // namespace metal

kernel void bf_math(device bfloat* out, device const bfloat* x, device const bfloat* y,
                    uint i [[thread_position_in_grid]]) {
  const bfloat a = x[i], b = y[i];
  bfloat r0 = metal::abs(a);        // bfloat overloads: bfloat results, no cast needed
  bfloat r1 = exp(a);
  bfloat r2 = fast::sin(a);
  bfloat r3 = precise::pow(b, a);
  bfloat r4 = fma(a, b, a);
  bfloat r5 = max(a, b);
  out[6 * i + 0] = r0; out[6 * i + 1] = r1; out[6 * i + 2] = r2;
  out[6 * i + 3] = r3; out[6 * i + 4] = r4; out[6 * i + 5] = r5;
}

kernel void bf_simd(device bfloat* out, device const bfloat* x, uint i [[thread_position_in_grid]]) {
  const bfloat v = x[i];
  out[4 * i + 0] = simd_sum(v);
  out[4 * i + 1] = simd_max(v);
  out[4 * i + 2] = simd_shuffle_down(v, ushort(1));
  out[4 * i + 3] = simd_prefix_inclusive_sum(v);
}

// Metal's own simd_sum(float), beside the library's bfloat simd_sum (an untagged call: the library defines the name).
kernel void float_simd_beside_wrappers(device float* out, device const float* x, uint i [[thread_position_in_grid]]) {
  if (x[i] > 0.5f) out[i] = simd_sum(x[i]);
  out[32 + i] = simd_max(x[i]);
}

// The float builtins directly, and the simd-group size builtin.
kernel void float_builtins(device float* out, device const float* x, uint i [[thread_position_in_grid]]) {
  out[4 * i + 0] = __metal_simd_sum(x[i]);
  out[4 * i + 1] = __metal_simd_shuffle_xor(x[i], ushort(1));
  out[4 * i + 2] = __metal_exp2(x[i], __METAL_FAST_MATH__);
  out[4 * i + 3] = float(__metal_get_simdgroup_size(ushort()));
}
"""


def f32(a):
    return np.asarray(a, np.float32)


@pytest.fixture(scope="module", params=["lane_loops", "fibers"])
def bf16_lib(request):
    mp = pytest.MonkeyPatch()
    if request.param == "fibers":
        mp.setenv("MPS_SHIM_LANE_LOOPS", "0")
    library = mps_shim.compile_shader(BF16_LIBRARY)
    mp.undo()
    return library


def test_mlx_style_bfloat_math_compiles_and_rounds_float_results_once(bf16_lib):
    rng = np.random.default_rng(0)
    n = 64
    x = (rng.random(n) * 4 - 2).astype(np.float32).astype(BF16)
    y = (rng.random(n) * 2 + 0.5).astype(np.float32).astype(BF16)
    out = np.zeros(6 * n, BF16)
    bf16_lib.bf_math(out, x, y, threads=n)
    got = f32(out.reshape(n, 6))
    xf, yf = f32(x), f32(y)
    want = [np.abs(xf), np.exp(xf), np.sin(xf), np.power(yf, xf), (xf.astype(np.float64) * yf + xf).astype(np.float32),
            np.maximum(xf, yf)]
    for k, w in enumerate(want):
        np.testing.assert_allclose(got[:, k], f32(w.astype(BF16)), rtol=8e-3, atol=1e-6, err_msg=f"column {k}")
    np.testing.assert_array_equal(got[:, 0], f32(np.abs(x)))
    np.testing.assert_array_equal(got[:, 5], f32(np.maximum(x, y)))


def test_mlx_style_bfloat_simd_wrappers(bf16_lib):
    rng = np.random.default_rng(1)
    n = 64
    x = (rng.random(n) + 0.5).astype(np.float32).astype(BF16)
    out = np.zeros(4 * n, BF16)
    bf16_lib.bf_simd(out, x, threads=n, group_size=64)
    got = f32(out.reshape(n, 4))
    xf = f32(x).reshape(2, 32)
    sums = np.repeat(xf.astype(np.float64).sum(axis=1), 32)
    np.testing.assert_allclose(got[:, 0], sums, rtol=1e-2)      # float sum, rounded to bfloat once
    np.testing.assert_array_equal(got[:, 1], np.repeat(xf.max(axis=1), 32))
    down = np.concatenate([np.append(xf[g, 1:], xf[g, 31]) for g in range(2)])
    np.testing.assert_array_equal(got[:, 2], down)               # the last lane keeps its own value
    scans = np.cumsum(xf.astype(np.float64), axis=1).reshape(-1)
    np.testing.assert_allclose(got[:, 3], scans, rtol=1e-2)


def test_wrappers_of_simd_builtins_wait_like_simd_functions(bf16_lib):
    """A kernel calling only the wrappers runs its threads together (never one thread at a time)."""
    assert bf16_lib.library.kernels["bf_simd"]["execution"] in ("lane_loops", "fibers")
    assert bf16_lib.library.kernels["float_builtins"]["execution"] in ("lane_loops", "fibers")


def test_metal_simd_sum_beside_library_wrappers(bf16_lib):
    n = 32
    x = np.arange(n, dtype=np.float32) / 32
    out = np.zeros(2 * n, np.float32)
    bf16_lib.float_simd_beside_wrappers(out, x, threads=n)
    on = x > 0.5
    np.testing.assert_allclose(out[:n][on], np.full(on.sum(), x[on].sum()), rtol=1e-6)
    np.testing.assert_array_equal(out[n:], np.full(n, x.max()))


def test_float_builtins(bf16_lib):
    n = 32
    x = np.arange(n, dtype=np.float32) / 8
    out = np.zeros(4 * n, np.float32)
    bf16_lib.float_builtins(out, x, threads=n)
    got = out.reshape(n, 4)
    np.testing.assert_allclose(got[:, 0], np.full(n, x.sum()), rtol=1e-6)
    np.testing.assert_array_equal(got[:, 1], x[np.arange(n) ^ 1])
    np.testing.assert_allclose(got[:, 2], np.exp2(x), rtol=2e-7)
    np.testing.assert_array_equal(got[:, 3], np.full(n, 32.0))


APPLE_SURFACE = r"""
#include <metal_stdlib>
using namespace metal;
kernel void bf_exp(device float* out, device const bfloat* x, uint i [[thread_position_in_grid]]) {
  auto r = metal::exp(x[i]);                        // Apple: exp(float), a float
  static_assert(is_same_v<decltype(r), float>, "exp(bfloat) is exp(float)");
  static_assert(is_same_v<decltype(fast::sqrt(x[i])), float>, "fast::sqrt(bfloat) is a float");
  static_assert(is_same_v<decltype(max(x[i], x[i])), float>, "max(bfloat, bfloat) is a float");
  out[i] = r;
}
"""


def test_apple_surface_bfloat_math_is_the_float_function():
    lib = mps_shim.compile_shader(APPLE_SURFACE)
    x = np.array([0.5, -1.25, 3.0, 0.0], BF16)
    out = np.zeros(4, np.float32)
    lib.bf_exp(out, x, threads=4)
    np.testing.assert_allclose(out, np.exp(f32(x)), rtol=2e-7)   # not rounded to bfloat


MLX_DIR = os.environ.get("MPS_SHIM_MLX_DIR", "/work/src/mlx")
MLX_KERNELS = r"""
#include "mlx/backend/metal/kernels/utils.h"
#include "mlx/backend/metal/kernels/unary_ops.h"
#include "mlx/backend/metal/kernels/unary.h"
#include "mlx/backend/metal/kernels/binary_ops.h"
#include "mlx/backend/metal/kernels/binary.h"
instantiate_kernel("v_Expfloat32float32", unary_v, float, float, Exp, 1)
instantiate_kernel("v_Sinbfloat16bfloat16", unary_v, bfloat16_t, bfloat16_t, Sin, 1)
instantiate_kernel("vv_Maximumbfloat16", binary_vv, bfloat16_t, bfloat16_t, Maximum, 1)
instantiate_kernel("vv_Powerfloat32", binary_vv, float, float, Power, 1)
"""


@pytest.fixture(scope="module")
def mlx():
    if not os.path.isfile(os.path.join(MLX_DIR, "mlx/backend/metal/kernels/bf16_math.h")):
        pytest.skip(f"MLX's sources are not at {MLX_DIR} (set MPS_SHIM_MLX_DIR)")
    return mps_shim.CompiledShader(MLX_KERNELS, include_dirs=[MLX_DIR])


def test_mlx_unary_kernels(mlx):
    n = 100
    x = np.linspace(-3, 3, n, dtype=np.float32)
    out = np.zeros(n, np.float32)
    mlx.v_Expfloat32float32(x, out, np.uint32(n), threads=n)
    np.testing.assert_allclose(out, np.exp(x), rtol=2e-7)
    xb = x.astype(BF16)
    outb = np.zeros(n, BF16)
    mlx.v_Sinbfloat16bfloat16(xb, outb, np.uint32(n), threads=n)
    np.testing.assert_array_equal(f32(outb), f32(np.sin(f32(xb)).astype(BF16)))


def test_mlx_binary_kernels(mlx):
    n = 100
    rng = np.random.default_rng(2)
    a, b = rng.random(n).astype(np.float32) * 4, rng.random(n).astype(np.float32) * 3
    out = np.zeros(n, np.float32)
    mlx.vv_Powerfloat32(a, b, out, np.uint32(n), threads=n)
    np.testing.assert_allclose(out, np.power(a, b), rtol=1e-6)
    ab, bb = (a - 2).astype(BF16), (b - 1.5).astype(BF16)
    outb = np.zeros(n, BF16)
    mlx.vv_Maximumbfloat16(ab, bb, outb, np.uint32(n), threads=n)
    np.testing.assert_array_equal(f32(outb), f32(np.maximum(ab, bb)))


# Operators overloaded on address space only (MLX's complex.h): one definition after erasure.
ADDRESS_SPACE_OPERATORS = r"""
#include <metal_stdlib>
using namespace metal;
struct cplx {
  float re, im;
  constexpr operator float2() const thread { return float2(re, im); }
  constexpr operator float2() const device { return float2(re, im); }
  constexpr operator float2() const constant { return float2(re, im); }
};
constexpr thread cplx& operator+=(thread cplx& a, cplx b) { a.re += b.re; a.im += b.im; return a; }
constexpr device cplx& operator+=(device cplx& a, cplx b) { a.re += b.re; a.im += b.im; return a; }
static_assert(bfloat16_t(1.5f) * bfloat16_t(2.0f) == bfloat16_t(3.0f), "bfloat arithmetic is constexpr");
kernel void add(device cplx* out, device const cplx* x, uint i [[thread_position_in_grid]]) {
  out[i] += x[i];
  cplx c = out[i];
  c += x[i];
  const float2 v = c;
  out[i].re = v.x;
  out[i].im = v.y;
}
"""


def test_operators_overloaded_on_address_space():
    lib = mps_shim.compile_shader(ADDRESS_SPACE_OPERATORS)
    x = np.array([[1, 2], [3, 4]], np.float32)
    out = np.array([[10, 20], [30, 40]], np.float32)
    lib.add(out, x, threads=2)
    np.testing.assert_array_equal(out, [[12, 24], [36, 48]])
