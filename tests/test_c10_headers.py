"""PyTorch's c10/metal headers, embedded the way Inductor embeds them, on the host engine.

Needs torch 2.13.0 (for its headers and its own embedding helper); skips cleanly
without it. References come from numpy and mpmath (a dependency of torch).
"""
import importlib.util
import math
import os

import numpy as np
import pytest

import mps_shim

HEADERS = ["utils", "special_math", "igamma", "expm1f", "random", "indexing", "error"]


def _torch_include():
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    include = os.path.join(list(spec.submodule_search_locations)[0], "include")
    if not os.path.exists(os.path.join(include, "c10", "metal", "utils.h")):
        pytest.skip("this torch build ships no c10/metal headers")
    return include


def embedded(headers):
    """The header text with include lines replaced by file contents, as torch/_inductor/codegen/mps.py does."""
    from pathlib import Path

    include = _torch_include()  # skips without torch
    from torch.utils._cpp_embed_headers import _embed_headers

    lines = [f"#include <c10/metal/{h}.h>\n" for h in headers]
    return _embed_headers(lines, [Path(include)], set())


KERNELS = r"""
kernel void special(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    const float v = x[i];
    out[8 * i + 0] = c10::metal::erfinv(v * 0.99f / 10.0f);
    out[8 * i + 1] = c10::metal::i0(v);
    out[8 * i + 2] = c10::metal::digamma(v + 0.5f);
    out[8 * i + 3] = c10::metal::log_gamma(v + 0.5f);
    out[8 * i + 4] = c10::metal::erf(v / 4.0f);
    out[8 * i + 5] = c10::metal::i1e(v);
    out[8 * i + 6] = c10::metal::zeta(v + 1.5f, 2.0f);
    out[8 * i + 7] = c10::metal::xlog1py(v, v / 10.0f);
}

kernel void division(device float* out, device int* iout, constant float* a, constant float* b,
                     constant int* ia, constant int* ib, uint i [[thread_position_in_grid]]) {
    out[2 * i + 0] = c10::metal::floor_divide(a[i], b[i]);
    out[2 * i + 1] = c10::metal::remainder(a[i], b[i]);
    iout[2 * i + 0] = c10::metal::floor_divide(ia[i], ib[i]);
    iout[2 * i + 1] = c10::metal::remainder(ia[i], ib[i]);
}

kernel void complex_mul(device float2* out, constant float2* a, constant float2* b, uint i [[thread_position_in_grid]]) {
    out[i] = c10::metal::mul(a[i], b[i]);
}

kernel void casts(device half* h, device bfloat* bf, device int* n, device uchar* u, device bool* flag,
                  constant float* x, uint i [[thread_position_in_grid]]) {
    h[i] = c10::metal::cast_to<half>(x[i]);
    bf[i] = c10::metal::cast_to<bfloat>(x[i]);
    n[i] = c10::metal::cast_to<int>(x[i]);
    u[i] = c10::metal::cast_to<uchar>(c10::metal::cast_to<int>(x[i]));
    flag[i] = c10::metal::cast_to<bool>(x[i]);
}

// cast_to<D> from every source dtype, one kernel per destination.
#define CAST_KERNEL(D)                                                                                   \
kernel void cast_to_##D(device D* out, constant float* f, constant half* h, constant bfloat* b,          \
                        constant int* n, constant long* l, constant short* s, constant char* c,           \
                        constant uchar* u, constant bool* z, uint k [[thread_position_in_grid]]) {       \
    device D* o = out + 9 * k;                                                                           \
    o[0] = c10::metal::cast_to<D>(f[k]); o[1] = c10::metal::cast_to<D>(h[k]); o[2] = c10::metal::cast_to<D>(b[k]); \
    o[3] = c10::metal::cast_to<D>(n[k]); o[4] = c10::metal::cast_to<D>(l[k]); o[5] = c10::metal::cast_to<D>(s[k]); \
    o[6] = c10::metal::cast_to<D>(c[k]); o[7] = c10::metal::cast_to<D>(u[k]); o[8] = c10::metal::cast_to<D>(z[k]); \
}
CAST_KERNEL(float) CAST_KERNEL(half) CAST_KERNEL(bfloat) CAST_KERNEL(int) CAST_KERNEL(long)
CAST_KERNEL(short) CAST_KERNEL(char) CAST_KERNEL(uchar) CAST_KERNEL(bool)

kernel void random(device float* uniform, device float* normal, constant long& seed, uint i [[thread_position_in_grid]]) {
    uniform[i] = c10::metal::rand(seed, i);
    normal[i] = c10::metal::randn(seed, i);
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(embedded(HEADERS) + KERNELS)


def test_every_header_compiles_embedded():
    source = embedded(HEADERS) + "\nkernel void noop(device float* o, uint i [[thread_position_in_grid]]) { o[i] = 0; }\n"
    assert "noop" in mps_shim.ShaderLibrary(source).kernel_names


def test_special_functions(lib):
    mpmath = pytest.importorskip("mpmath")
    x = np.linspace(0.1, 9.7, 97).astype(np.float32)
    out = np.zeros(8 * x.size, np.float32)
    lib.special(out, x, threads=x.size)
    out = out.reshape(-1, 8)
    refs = [
        lambda v: mpmath.erfinv(v * 0.99 / 10),
        lambda v: mpmath.besseli(0, v),
        lambda v: mpmath.digamma(v + 0.5),
        lambda v: mpmath.loggamma(v + 0.5),
        lambda v: mpmath.erf(v / 4),
        lambda v: mpmath.besseli(1, v) * mpmath.exp(-abs(v)),
        lambda v: mpmath.zeta(v + 1.5, 2),
        lambda v: v * mpmath.log1p(v / 10),
    ]
    xs = [float(v) for v in x]
    for column, ref in enumerate(refs):
        expected = np.array([float(ref(mpmath.mpf(v))) for v in xs])
        np.testing.assert_allclose(out[:, column], expected, rtol=2e-5, atol=2e-6, err_msg=f"column {column}")


def test_floor_divide_and_remainder_follow_python(lib):
    rng = np.random.default_rng(5)
    a = rng.uniform(-50, 50, 500).astype(np.float32)
    b = rng.choice([-7.5, -3.0, 2.5, 4.0], 500).astype(np.float32)
    ia = rng.integers(-100, 100, 500).astype(np.int32)
    ib = rng.choice([-7, -3, 2, 5], 500).astype(np.int32)
    out = np.zeros(1000, np.float32)
    iout = np.zeros(1000, np.int32)
    lib.division(out, iout, a, b, ia, ib, threads=500)
    np.testing.assert_allclose(out[0::2], np.floor_divide(a, b), rtol=0, atol=0)
    np.testing.assert_allclose(out[1::2], np.remainder(a, b), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(iout[0::2], np.floor_divide(ia, ib))
    np.testing.assert_array_equal(iout[1::2], np.remainder(ia, ib))


def test_complex_multiplication_on_float2(lib):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((300, 2)).astype(np.float32)
    b = rng.standard_normal((300, 2)).astype(np.float32)
    out = np.zeros_like(a)
    lib.complex_mul(out, a, b, threads=300)
    expected = (a[:, 0] + 1j * a[:, 1]) * (b[:, 0] + 1j * b[:, 1])
    np.testing.assert_allclose(out[:, 0] + 1j * out[:, 1], expected, rtol=1e-5, atol=1e-6)


def test_casts_between_dtypes(lib):
    x = np.array([0.0, -0.0, 1.5, -2.5, 65504.0, 70000.0, 1e-8, 3.99, -1.0, 255.9, 1.0000001, 0.1], np.float32)
    n = x.size
    h = np.zeros(n, np.float16)
    bf = np.zeros(n, np.uint16)
    ints = np.zeros(n, np.int32)
    u = np.zeros(n, np.uint8)
    flag = np.zeros(n, np.bool_)
    lib.casts(h, bf, ints, u, flag, x, threads=n)
    with np.errstate(over="ignore"):  # 70000 -> inf is the point
        np.testing.assert_array_equal(h, x.astype(np.float16))
    bits = x.view(np.uint32).astype(np.uint64)
    np.testing.assert_array_equal(bf, ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16))
    np.testing.assert_array_equal(ints, np.trunc(x).astype(np.int32))
    np.testing.assert_array_equal(u, np.trunc(x).astype(np.int32).astype(np.uint8))
    np.testing.assert_array_equal(flag, x != 0)


def _bfloat_bits(values):
    """float64 values -> bfloat16 bits, rounding to nearest even through float32 (exact here)."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def test_cast_to_between_all_dtypes(lib):
    """c10::metal::cast_to<D>(S) for every pair of the nine scalar dtypes, against numpy's astype.

    Values stay where every conversion is defined (no negative float -> unsigned,
    nothing out of range) and are exact in bfloat16, so no reference rounds twice.
    """
    base = np.array([0, 1, 2.5, 3.75, 7, 15.5, 31.25, 64, 100.5, 120.5, 127, 0.125])
    n = base.size
    sources = {
        "float": base.astype(np.float32), "half": base.astype(np.float16), "bfloat": _bfloat_bits(base),
        "int": np.trunc(base).astype(np.int32), "long": np.trunc(base).astype(np.int64),
        "short": np.trunc(base).astype(np.int16), "char": np.trunc(base).astype(np.int8),
        "uchar": np.trunc(base).astype(np.uint8), "bool": base != 0,
    }
    as_float64 = {name: (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64) if name == "bfloat"
                  else arr.astype(np.float64) for name, arr in sources.items()}
    numpy_dtype = {"float": np.float32, "half": np.float16, "int": np.int32, "long": np.int64, "short": np.int16,
                   "char": np.int8, "uchar": np.uint8, "bool": np.bool_}
    for dest in ["float", "half", "bfloat", "int", "long", "short", "char", "uchar", "bool"]:
        out = np.zeros(9 * n, np.uint16 if dest == "bfloat" else numpy_dtype[dest])
        getattr(lib, f"cast_to_{dest}")(out, *sources.values(), threads=n)
        out = out.reshape(n, 9)
        for j, (src, values) in enumerate(as_float64.items()):
            if dest == "bfloat":
                expected = _bfloat_bits(values)
            elif dest == "bool":
                expected = values != 0
            else:
                expected = (values if src == "bfloat" else sources[src]).astype(numpy_dtype[dest])
            np.testing.assert_array_equal(out[:, j], expected, err_msg=f"cast_to<{dest}>({src})")


def test_rand_and_randn_statistics(lib):
    n = 200_000
    uniform = np.zeros(n, np.float32)
    normal = np.zeros(n, np.float32)
    lib.random(uniform, normal, 1234, threads=n)
    assert uniform.min() >= 0 and uniform.max() < 1
    # moments of U(0,1) and N(0,1); bounds are > 6 standard errors wide
    assert abs(uniform.mean() - 0.5) < 6 * math.sqrt(1 / 12 / n)
    assert abs(uniform.var() - 1 / 12) < 0.003
    assert abs(normal.mean()) < 6 / math.sqrt(n)
    assert abs(normal.std() - 1) < 0.01
    counts, _ = np.histogram(uniform, bins=10, range=(0, 1))
    assert np.all(np.abs(counts - n / 10) < 6 * math.sqrt(n / 10))
    again = np.zeros(n, np.float32)
    lib.random(again, normal, 1234, threads=n)
    np.testing.assert_array_equal(again, uniform)  # same seed, same stream


REDUCTIONS = r"""
// Inductor's reduction shape: a 2-D grid (row, r), threadgroups of {1, R},
// max_total_threads_per_threadgroup(R), and a loop when a row exceeds R.
[[max_total_threads_per_threadgroup(1024)]]
kernel void row_reduce(device float* sums, device float* maxes, device long* argmaxes,
                       constant float* x, constant long& cols,
                       uint2 pos [[thread_position_in_grid]], uint2 tid [[thread_position_in_threadgroup]],
                       uint2 size [[threads_per_threadgroup]]) {
    threadgroup float tmp_sum[32];
    threadgroup float tmp_max[32];
    threadgroup float tmp_arg[32];
    threadgroup long tmp_idx[32];
    const long row = pos.x;
    float acc = 0, best = -INFINITY;
    long best_idx = 0;
    for (long c = tid.y; c < cols; c += size.y) {
        const float v = x[row * cols + c];
        acc += v;
        if (v > best) { best = v; best_idx = c; }
    }
    const float s = c10::metal::threadgroup_sum(tmp_sum, acc, tid.y, size.y);
    const float m = c10::metal::threadgroup_max(tmp_max, best, tid.y, size.y);
    const long a = c10::metal::threadgroup_argmax(tmp_arg, tmp_idx, best, best_idx, tid.y, size.y);
    if (tid.y == 0) {
        sums[row] = s;
        maxes[row] = m;
        argmaxes[row] = a;
    }
}

[[max_total_threads_per_threadgroup(1024)]]
kernel void row_stats(device float* prods, device float* mins, device long* argmins, device float3* welford,
                      constant float* x, constant long& cols,
                      uint2 pos [[thread_position_in_grid]], uint2 tid [[thread_position_in_threadgroup]],
                      uint2 size [[threads_per_threadgroup]]) {
    threadgroup float tmp_prod[32];
    threadgroup float tmp_min[32];
    threadgroup float tmp_arg[32];
    threadgroup long tmp_idx[32];
    threadgroup float3 tmp_welford[1024];
    const long row = pos.x;
    float prod = 1, low = INFINITY;
    long low_idx = 0;
    float3 w = float3(0);
    for (long c = tid.y; c < cols; c += size.y) {
        const float v = x[row * cols + c];
        prod *= 1.0f + v * 0.001f;
        if (v < low) { low = v; low_idx = c; }
        w = c10::metal::welford_combine(w, float3(v, 0, 1));
    }
    tmp_welford[tid.y] = w;
    const float p = c10::metal::threadgroup_prod(tmp_prod, prod, tid.y, size.y);
    const float m = c10::metal::threadgroup_min(tmp_min, low, tid.y, size.y);
    const long a = c10::metal::threadgroup_argmin(tmp_arg, tmp_idx, low, low_idx, tid.y, size.y);
    const float3 total = c10::metal::threadgroup_welford_combine(tmp_welford, size.y);
    if (tid.y == 0) {
        prods[row] = p;
        mins[row] = m;
        argmins[row] = a;
        welford[row] = total;
    }
}

template <typename T>
kernel void scatter_add(device c10::metal::AtomicType_t<T>* out, constant T* values, constant long* index,
                        uint i [[thread_position_in_grid]]) {
    c10::metal::AtomicType<T>::atomic_add(out, index[i], values[i]);
}
template [[host_name("scatter_add_float")]] kernel void scatter_add<float>(
    device c10::metal::AtomicType_t<float>*, constant float*, constant long*, uint);
template [[host_name("scatter_add_half")]] kernel void scatter_add<half>(
    device c10::metal::AtomicType_t<half>*, constant half*, constant long*, uint);
template [[host_name("scatter_add_bfloat")]] kernel void scatter_add<bfloat>(
    device c10::metal::AtomicType_t<bfloat>*, constant bfloat*, constant long*, uint);
template [[host_name("scatter_add_int")]] kernel void scatter_add<int>(
    device c10::metal::AtomicType_t<int>*, constant int*, constant long*, uint);
template [[host_name("scatter_add_long")]] kernel void scatter_add<long>(
    device c10::metal::AtomicType_t<long>*, constant long*, constant long*, uint);
"""


@pytest.fixture(scope="module")
def reductions():
    return mps_shim.compile_shader(embedded(["utils", "reduction_utils", "atomic"]) + REDUCTIONS)


@pytest.mark.parametrize("cols", [1, 31, 32, 33, 1000, 1024, 4097, 1_000_000])
def test_reduction_utils_in_inductor_shape(reductions, cols):
    rows = 3 if cols < 100_000 else 1
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    group = min(cols, 1024)
    sums, maxes = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    argmaxes = np.zeros(rows, np.int64)
    reductions.row_reduce(sums, maxes, argmaxes, x, cols, threads=(rows, group), group_size=(1, group))
    np.testing.assert_allclose(sums, x.astype(np.float64).sum(1), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(maxes, x.max(1))
    np.testing.assert_array_equal(argmaxes, x.argmax(1))


@pytest.mark.parametrize("cols", [1, 33, 1000, 1024, 4097, 100_000])
def test_prod_min_argmin_and_welford_in_inductor_shape(reductions, cols):
    rows = 3
    rng = np.random.default_rng(cols + 7)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    group = min(cols, 1024)
    prods, mins = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    argmins = np.zeros(rows, np.int64)
    welford = np.zeros((rows, 4), np.float32)  # float3 has float4's size
    reductions.row_stats(prods, mins, argmins, welford, x, cols, threads=(rows, group), group_size=(1, group))
    np.testing.assert_allclose(prods, np.prod(1 + x.astype(np.float64) * 0.001, axis=1), rtol=1e-4)
    np.testing.assert_array_equal(mins, x.min(1))
    np.testing.assert_array_equal(argmins, x.argmin(1))
    np.testing.assert_allclose(welford[:, 0], x.mean(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(welford[:, 1] / cols, x.var(1), rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(welford[:, 2], cols)


@pytest.mark.parametrize("dtype", ["float", "half", "bfloat", "int", "long"])
def test_atomic_add_from_atomic_h(reductions, dtype):
    rng = np.random.default_rng(3)
    n, bins = 20_000, 7
    index = rng.integers(0, bins, n).astype(np.int64)
    if dtype in ("int", "long"):
        values = rng.integers(-5, 6, n).astype(np.int32 if dtype == "int" else np.int64)
        out = np.zeros(bins, values.dtype)
        getattr(reductions, f"scatter_add_{dtype}")(out, values, index, threads=n)
        np.testing.assert_array_equal(out, np.bincount(index, weights=values, minlength=bins).astype(values.dtype))
        return
    values = rng.integers(-4, 5, n).astype(np.float32) * 0.5  # exact in every float type
    if dtype == "bfloat":
        # bfloat16 holds 8 significant bits: keep every running sum exact (|sum| < 128 in steps of 0.5)
        n = 700
        index, values = index[:n], rng.choice(np.array([-0.5, 0.5], np.float32), n)
    if dtype == "half":
        src, out = values.astype(np.float16), np.zeros(bins, np.float16)
    elif dtype == "bfloat":
        src = _bfloat_bits(values)
        out = np.zeros(bins, np.uint16)
    else:
        src, out = values, np.zeros(bins, np.float32)
    getattr(reductions, f"scatter_add_{dtype}")(out, src, index, threads=n)
    got = (out.astype(np.uint32) << 16).view(np.float32) if dtype == "bfloat" else out.astype(np.float64)
    np.testing.assert_array_equal(got, np.bincount(index, weights=values, minlength=bins))


# Two more shapes Inductor emits (torch/_inductor/codegen/mps.py): a one-stage
# welford_reduce over a threadgroup array, and "any" through a threadgroup bool.
SINGLE_STAGE = r"""
[[max_total_threads_per_threadgroup(256)]]
kernel void var_mean(device float* out_mean, device float* out_m2, constant float* in_ptr0,
                     uint2 thread_pos [[thread_position_in_grid]], uint2 group_pos [[thread_position_in_threadgroup]]) {
    auto xindex = thread_pos.x;
    auto r0_index = thread_pos.y;
    int x0 = xindex;
    threadgroup float tmp_acc_0[256];
    auto tmp0 = in_ptr0[r0_index + 256 * x0];
    tmp_acc_0[r0_index] = tmp0;
    auto tmp1 = c10::metal::threadgroup_welford_reduce(tmp_acc_0, 256);
    auto tmp2 = tmp1.x;
    auto tmp3 = tmp1.y;
    if (r0_index == 0) { out_mean[x0] = tmp2; out_m2[x0] = tmp3; }
}

[[max_total_threads_per_threadgroup(256)]]
kernel void any_above(device bool* out, constant float* in_ptr0,
                      uint2 thread_pos [[thread_position_in_grid]], uint2 group_pos [[thread_position_in_threadgroup]]) {
    auto xindex = thread_pos.x;
    auto r0_index = thread_pos.y;
    int x0 = xindex;
    threadgroup bool tmp_acc_0;
    tmp_acc_0 = false;
    threadgroup_barrier(metal::mem_flags::mem_threadgroup);
    auto tmp0 = in_ptr0[r0_index + 256 * x0];
    auto tmp1 = tmp0 > 2.5f;
    if (tmp1) { tmp_acc_0 = true; }
    threadgroup_barrier(metal::mem_flags::mem_threadgroup);
    if (r0_index == 0) out[x0] = tmp_acc_0;
}
"""


def test_single_stage_welford_and_any_in_inductor_shape():
    lib = mps_shim.compile_shader(embedded(["utils", "reduction_utils"]) + SINGLE_STAGE)
    x = np.random.default_rng(5).standard_normal((16, 256)).astype(np.float32)
    mean, m2 = np.zeros(16, np.float32), np.zeros(16, np.float32)
    lib.var_mean(mean, m2, x, threads=(16, 256), group_size=(1, 256))
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m2, x.astype(np.float64).var(1) * 256, rtol=1e-4)
    out = np.zeros(16, np.bool_)
    lib.any_above(out, x, threads=(16, 256), group_size=(1, 256))
    np.testing.assert_array_equal(out, (x > 2.5).any(1))
    assert (x > 2.5).any(1).any() and not (x > 2.5).any(1).all()   # both outcomes occur
    for name in ("var_mean", "any_above"):
        # checked mode runs every kernel on fibers; a GPU runs one thread per Metal thread
        if mps_shim.checked_mode() == "off" and mps_shim.runtime_info().get("backend") == "host":
            assert lib.library.kernels[name]["execution"] == "lane_loops", lib.library.kernels[name]["execution_note"]
