"""How SIMD-group reductions and scans round: the tree order of docs/architecture.md.

Each reduction over a SIMD-group (32 lanes) or quad (4 lanes) combines
neighbours first: lanes (2i, 2i + 1), then those pairs' results, ... (the
butterfly of a shuffle-xor reduction with offsets 1, 2, 4, 8, 16), an inactive
lane left out. Scans are Kogge-Stone over the same lanes. The references here
are independent: an exact sum (math.fsum) with the tolerance torch's tests use,
and a numpy emulation of the same tree in the kernel's own type (numpy's
float16 and ml_dtypes' bfloat16 round every operation as the engine does), so
the result bits are checked, on lane loops and on fibers (the test suite's
cross-check compares the two engines as well). c10's reduction_utils.h
(embedded as Inductor embeds it) is checked with bfloat, half, float, int and
long against numpy.
"""
import math

import numpy as np
import pytest

import mps_shim

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {"half": np.dtype(np.float16), "bfloat": BF16, "float": np.dtype(np.float32)}


# ---- the reference: the tree in numpy, in the element type ---------------------------------------------------------

def tree(values, present, combine):
    """combine_values: levels of aligned blocks, left block first; an absent side passes the other on."""
    a, p = list(values), list(present)
    d = 1
    while d < len(a):
        for i in range(0, len(a), 2 * d):
            if p[i] and p[i + d]:
                a[i] = combine(a[i], a[i + d])
            elif p[i + d]:
                a[i] = a[i + d]
            p[i] = p[i] or p[i + d]
        d *= 2
    return a[0]


def kogge_stone(values, present, op):
    """scan_values: after the level of distance d, lane l combines lanes (l - 2d, l]; (value, any lane) per lane."""
    a, p = list(values), list(present)
    d = 1
    while d < len(a):
        b, q = list(a), list(p)
        for i in range(d, len(a)):
            if p[i - d] and p[i]:
                b[i] = op(a[i - d], a[i])
            elif p[i - d]:
                b[i] = a[i - d]
            q[i] = p[i - d] or p[i]
        a, p = b, q
        d *= 2
    return a, p


def reduce_ref(x, active, op, width=32):
    """The value of a reduction for every lane (None where inactive) over groups of `width` lanes."""
    combine = np.add if op == "sum" else np.multiply
    out = [None] * len(x)
    for first in range(0, len(x), width):
        vals = list(x[first:first + width]) + [x[0]] * (first + width - len(x))
        pres = list(active[first:first + width]) + [False] * (first + width - len(x))
        if any(pres):
            r = tree(vals, pres, combine)
            for lane in range(first, min(first + width, len(x))):
                if active[lane]:
                    out[lane] = r
    return out


def scan_ref(x, active, op, inclusive, width=32):
    combine = np.add if op == "sum" else np.multiply
    identity = x.dtype.type(0 if op == "sum" else 1)
    out = [None] * len(x)
    for first in range(0, len(x), width):
        vals = list(x[first:first + width]) + [x[0]] * (first + width - len(x))
        pres = list(active[first:first + width]) + [False] * (first + width - len(x))
        inc, anyp = kogge_stone(vals, pres, combine)
        for lane in range(first, min(first + width, len(x))):
            if not active[lane]:
                continue
            l = lane - first
            if inclusive:
                out[lane] = inc[l]
            else:
                out[lane] = inc[l - 1] if l > 0 and anyp[l - 1] else identity
    return out


def bits(a):
    a = np.asarray(a)
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a.view(np.uint32)


def assert_same_bits(got, want, active):
    """got[i] has want[i]'s bits on every active lane."""
    for i, on in enumerate(active):
        if on:
            w = np.asarray([want[i]], got.dtype)
            assert bits(got[i:i + 1])[0] == bits(w)[0], (i, got[i], want[i])


# ---- kernels ----------------------------------------------------------------------------------------------------------

# Eight results per thread: sum, product, the four scans, a quad sum and a
# quad scan; `keep` holds lanes
# out of the SIMD-group functions (a divergent branch), so groups with holes
# are exercised as well as partial ones.
SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

#define RESULTS                                     \
    out[0 * n + i] = simd_sum(v);                   \
    out[1 * n + i] = simd_product(v);               \
    out[2 * n + i] = simd_prefix_inclusive_sum(v);  \
    out[3 * n + i] = simd_prefix_exclusive_sum(v);  \
    out[4 * n + i] = simd_prefix_inclusive_product(v); \
    out[5 * n + i] = simd_prefix_exclusive_product(v); \
    out[6 * n + i] = quad_sum(v);                   \
    out[7 * n + i] = quad_prefix_exclusive_sum(v);

template <typename T>
kernel void reductions(device T* out, constant T* x, constant uint& n, uint i [[thread_position_in_grid]]) {
    const T v = x[i];
    RESULTS
}

template <typename T>
kernel void divergent(device T* out, constant T* x, constant uchar* keep, constant uint& n,
                      uint i [[thread_position_in_grid]]) {
    const T v = x[i];
    if (keep[i]) {
        RESULTS
    }
}

#define BOTH(T)                                                                                           \
template [[host_name("reductions_" #T)]] kernel void reductions<T>(device T*, constant T*, constant uint&, uint); \
template [[host_name("divergent_" #T)]] kernel void divergent<T>(device T*, constant T*, constant uchar*,         \
                                                               constant uint&, uint);
BOTH(half) BOTH(bfloat) BOTH(float) BOTH(half4) BOTH(bfloat2)
"""
RESULTS = [("sum", None), ("product", None), ("sum", True), ("sum", False), ("product", True), ("product", False),
           ("quad_sum", None), ("quad_sum", False)]


@pytest.fixture(scope="module", params=["lane_loops", "fibers"])
def lib(request):
    """The kernels on each engine (MPS_SHIM_LANE_LOOPS=0: fibers)."""
    mp = pytest.MonkeyPatch()
    if request.param == "fibers":
        mp.setenv("MPS_SHIM_LANE_LOOPS", "0")
    library = mps_shim.compile_shader(SOURCE)
    mp.undo()
    # the cuda backend has one engine (warps), checked mode runs fibers: both params run it
    if mps_shim.backend_name() == "host" and mps_shim.checked_mode() == "off":
        assert library.library.kernels["reductions_half"]["execution"] == request.param
    return library


def run(lib, name, x, group, keep=None):
    n = x.shape[0]
    out = np.zeros((8,) + x.shape, x.dtype)
    if keep is None:
        getattr(lib, f"reductions_{name}")(out, x, n, threads=n, group_size=group)
    else:
        getattr(lib, f"divergent_{name}")(out, x, keep.astype(np.uint8), n, threads=n, group_size=group)
    return out


def check_all(out, x, active):
    """Every result column against the tree emulation, component by component for vectors."""
    comps = x.shape[1] if x.ndim == 2 else 1
    for k, (op, inclusive) in enumerate(RESULTS):
        for c in range(comps):
            xs = x[:, c] if x.ndim == 2 else x
            got = out[k][:, c] if x.ndim == 2 else out[k]
            if op == "quad_sum":
                want = reduce_ref(xs, active, "sum", 4) if inclusive is None else scan_ref(xs, active, "sum", False, 4)
            elif inclusive is None:
                want = reduce_ref(xs, active, op)
            else:
                want = scan_ref(xs, active, op, inclusive)
            assert_same_bits(np.ascontiguousarray(got), want, active)


def values(rng, dtype, shape, low=0.5, high=1.5):
    """Values whose sums and products round in every type (and stay far from overflow and underflow)."""
    return (low + (high - low) * rng.random(shape)).astype(np.float32).astype(dtype)


# ---- half and bfloat: a tree, within torch's tolerance, and its exact bits --------------------------------------------

@pytest.mark.parametrize("name", ["half", "bfloat"])
def test_simd_sum_of_32_values_is_a_tree(lib, name):
    """64 SIMD-groups of torch.rand-like values: within torch's tolerance, and the tree's exact bits."""
    dtype = DTYPES[name]
    # torch's assertEqual(atol=1e-2) keeps its rtol for float16 (1e-3); bfloat16's rtol is 1.6e-2
    atol, rtol = (1e-2, 1e-3) if name == "half" else (1e-2, 1.6e-2)
    x = values(np.random.default_rng(14), dtype, 64 * 32, 0.0, 1.0)
    out = run(lib, name, x, 256)
    lane_order_misses = 0
    for sg in range(64):
        seg, got = x[32 * sg:32 * sg + 32], out[0][32 * sg:32 * sg + 32]
        assert np.all(bits(got) == bits(got[:1])), "every lane gets the same sum"
        exact = math.fsum(float(v) for v in seg)
        assert abs(float(got[0]) - exact) <= atol + rtol * abs(exact), (sg, float(got[0]), exact)
        assert bits(got[:1])[0] == bits(np.asarray([tree(list(seg), [True] * 32, np.add)], dtype))[0], sg
        acc = seg[0]
        for v in seg[1:]:
            acc = dtype.type(acc + v)
        lane_order_misses += abs(float(acc) - exact) > atol + rtol * abs(exact)
    if name == "half":
        assert lane_order_misses, "lane order (the old order) should miss the tolerance on this data"


@pytest.mark.parametrize("name", ["half", "bfloat", "float"])
@pytest.mark.parametrize("n, group", [(32, 32), (20, 20), (64, 64), (52, 52), (100, 50), (7, 7)])
def test_reductions_and_scans_follow_the_tree(lib, name, n, group):
    """Full, partial (20 threads: lanes 20..31 inactive) and several SIMD-groups per threadgroup."""
    dtype = DTYPES[name]
    x = values(np.random.default_rng(n * 31 + group), dtype, n)
    active = [True] * n
    out = run(lib, name, x, group)
    # lanes past a threadgroup's end belong to no SIMD-group of it: emulate per threadgroup
    for start in range(0, n, group):
        sl = slice(start, min(start + group, n))
        check_all(out[:, sl], x[sl], active[sl])


@pytest.mark.parametrize("name", ["half4", "bfloat2"])
@pytest.mark.parametrize("n", [32, 20])
def test_vectors_combine_each_component_in_the_tree(lib, name, n):
    dtype = DTYPES[name.rstrip("24")]
    comps = int(name[-1])
    x = values(np.random.default_rng(n), dtype, (n, comps))
    out = run(lib, name, x, n)
    check_all(out, x, [True] * n)


@pytest.mark.parametrize("name", ["half", "bfloat", "float"])
def test_inactive_lanes_are_left_out_of_the_tree(lib, name):
    """A divergent branch: lanes whose `keep` is 0 take no part (holes inside the SIMD-group)."""
    dtype = DTYPES[name]
    rng = np.random.default_rng(7)
    n = 64
    x = values(rng, dtype, n)
    keep = rng.random(n) < 0.6
    keep[32:36] = False  # a whole quad out
    out = run(lib, name, x, 64, keep)
    check_all(out, x, list(keep))


def test_last_lane_of_the_inclusive_scan_is_the_sum(lib):
    """The scan and the reduction share their tree: lane 31's inclusive scan is simd_sum, bit for bit."""
    x = values(np.random.default_rng(3), DTYPES["half"], 32)
    out = run(lib, "half", x, 32)
    assert bits(out[2][31:32])[0] == bits(out[0][31:32])[0]
    assert bits(out[4][31:32])[0] == bits(out[1][31:32])[0]


def test_prefix_sums_within_tolerance(lib):
    """Every lane's inclusive prefix sum in half against the exact prefix sum."""
    x = values(np.random.default_rng(11), DTYPES["half"], 32, 0.0, 1.0)
    out = run(lib, "half", x, 32)
    exact = np.cumsum(x.astype(np.float64))
    np.testing.assert_allclose(out[2].astype(np.float64), exact, atol=1e-2, rtol=0)
    np.testing.assert_allclose(out[3][1:].astype(np.float64), exact[:-1], atol=1e-2, rtol=0)
    assert out[3][0] == 0 and out[5][0] == 1


# ---- c10/metal/reduction_utils.h with half, bfloat, float, int, long ---------------------------------------------------

C10_KERNELS = r"""
// Per thread: the SIMD-group's sum, max, min, product, argmax, argmin (c10's
// simd_* functions), then the threadgroup's sum, max, min, product (c10's
// threadgroup_* functions, with their two stages through threadgroup memory).
template <typename T>
kernel void c10_reductions(device c10::metal::opmath_t<T>* sums, device T* out, device long* args,
                           constant T* x, constant uint& n,
                           uint i [[thread_position_in_grid]], uint t [[thread_index_in_threadgroup]],
                           uint size [[threads_per_threadgroup]]) {
    threadgroup c10::metal::opmath_t<T> partial[32];
    threadgroup T tmp[32];
    const T v = x[i];
    sums[i] = c10::metal::simd_sum(c10::metal::opmath_t<T>(v));
    out[0 * n + i] = c10::metal::simd_sum(v);
    out[1 * n + i] = c10::metal::simd_max(v);
    out[2 * n + i] = c10::metal::simd_min(v);
    out[3 * n + i] = c10::metal::simd_prod(v);
    args[0 * n + i] = c10::metal::simd_argmax(v).second;
    args[1 * n + i] = c10::metal::simd_argmin(v).second;
    const auto s = c10::metal::threadgroup_sum(partial, v, t, size);
    const T m = c10::metal::threadgroup_max(tmp, v, t, size);
    const T l = c10::metal::threadgroup_min(tmp, v, t, size);
    const auto p = c10::metal::threadgroup_prod(partial, v, t, size);
    if (t == 0) {
        sums[n + i] = s;
        out[4 * n + i] = m;
        out[5 * n + i] = l;
        sums[2 * n + i] = p;
    }
}
#define C10(T)                                                                                            \
template [[host_name("c10_" #T)]] kernel void c10_reductions<T>(device c10::metal::opmath_t<T>*, device T*, \
    device long*, constant T*, constant uint&, uint, uint, uint);
C10(half) C10(bfloat) C10(float) C10(int) C10(long)
"""


@pytest.fixture(scope="module")
def c10():
    from test_c10_headers import embedded  # skips without torch

    return mps_shim.compile_shader(embedded(["utils", "reduction_utils"]) + C10_KERNELS)


C10_DTYPES = {"half": (np.float16, np.float32), "bfloat": (BF16, np.float32), "float": (np.float32, np.float32),
              "int": (np.int32, np.int32), "long": (np.int64, np.int64)}


def c10_values(rng, name, n):
    if name in ("int", "long"):
        return rng.integers(-50, 50, n).astype(C10_DTYPES[name][0])
    return (rng.random(n) * 2 - 0.5).astype(np.float32).astype(C10_DTYPES[name][0])


def product_values(rng, name, n):
    if name in ("int", "long"):
        return rng.choice(np.array([-1, 1, 1, 2], C10_DTYPES[name][0]), n)
    return (0.9 + rng.random(n) * 0.2).astype(np.float32).astype(C10_DTYPES[name][0])


def run_c10(c10, name, x, group):
    n = x.shape[0]
    T, acc = C10_DTYPES[name]
    sums = np.zeros(3 * n, acc)
    out = np.zeros(6 * n, T)
    args = np.zeros(2 * n, np.int64)
    getattr(c10, f"c10_{name}")(sums, out, args, x, n, threads=n, group_size=group)
    return sums.reshape(3, n), out.reshape(6, n), args.reshape(2, n)


LONG = pytest.param("long", marks=pytest.mark.checked_reports(reason="c10's 64-bit reductions shuffle in inactive lanes (partial or divergent SIMD-groups): checked mode reports it"))


@pytest.mark.parametrize("name", ["half", "bfloat", "float", "int", LONG])
@pytest.mark.parametrize("n, group", [(32, 32), (64, 64), (256, 256), (100, 100), (20, 20)])
def test_c10_reduction_utils(c10, name, n, group):
    T, acc = C10_DTYPES[name]
    rng = np.random.default_rng(n + 1000 * len(name))
    x = c10_values(rng, name, n)
    sums, out, args = run_c10(c10, name, x, group)
    for start in range(0, n, group):
        for sg in range(start, min(start + group, n), 32):
            lanes = slice(sg, min(sg + 32, start + group, n))
            seg = x[lanes]
            wide = seg.astype(np.float64 if name not in ("int", "long") else np.int64)
            if name in ("int", "long"):
                assert np.all(out[0][lanes] == seg.sum()), (name, sg)
            else:
                # opmath_t<T> is float: the float tree, then rounded to T (bfloat has no simd_sum of its own)
                in_t = seg.astype(np.float32) if name == "bfloat" else seg
                want = tree(list(in_t) + [in_t[0]] * (32 - len(seg)), [True] * len(seg) + [False] * (32 - len(seg)),
                             np.add)
                assert np.all(bits(out[0][lanes]) == bits(np.asarray([want]).astype(T))), (name, sg)
                assert abs(float(out[0][lanes][0]) - math.fsum(wide)) <= (2e-2 if name != "float" else 1e-4) * max(
                    1.0, abs(math.fsum(wide))), (name, sg)
                fsum = tree(list(seg.astype(np.float32)) + [np.float32(0)] * (32 - len(seg)),
                             [True] * len(seg) + [False] * (32 - len(seg)), np.add)
                assert np.all(sums[0][lanes] == fsum)
            assert np.all(out[1][lanes] == seg.max()) and np.all(out[2][lanes] == seg.min())
            assert np.all(args[0][lanes] == np.argmax(seg)) and np.all(args[1][lanes] == np.argmin(seg))
        group_x = x[start:min(start + group, n)]
        if name in ("int", "long"):
            assert sums[1][start] == group_x.sum()
        else:
            np.testing.assert_allclose(sums[1][start], math.fsum(group_x.astype(np.float64)), rtol=1e-5, atol=1e-5)
        assert out[4][start] == group_x.max() and out[5][start] == group_x.min()


@pytest.mark.parametrize("name", ["half", "bfloat", "float", "int", LONG])
@pytest.mark.parametrize("n", [32, 256])
def test_c10_products(c10, name, n):
    """simd_prod and threadgroup_prod (long: c10's own shuffle loop) on values near 1."""
    T, acc = C10_DTYPES[name]
    x = product_values(np.random.default_rng(n), name, n)
    sums, out, args = run_c10(c10, name, x, n)
    for sg in range(0, n, 32):
        seg = x[sg:sg + 32]
        if name in ("int", "long"):
            assert np.all(out[3][sg:sg + 32] == np.prod(seg.astype(np.int64)).astype(T))
        else:
            in_t = seg.astype(np.float32) if name == "bfloat" else seg
            want = tree(list(in_t), [True] * 32, np.multiply)
            assert np.all(bits(out[3][sg:sg + 32]) == bits(np.asarray([want]).astype(T)))
    if name in ("int", "long"):
        assert sums[2][0] == np.prod(x.astype(np.int64))
    else:
        np.testing.assert_allclose(sums[2][0], np.prod(x.astype(np.float64)), rtol=1e-4)


@pytest.mark.parametrize("name", ["half", "bfloat", "float"])
def test_c10_max_and_min_propagate_nan(c10, name):
    T = C10_DTYPES[name][0]
    x = c10_values(np.random.default_rng(5), name, 64)
    x[40] = np.nan
    sums, out, args = run_c10(c10, name, x, 64)
    assert not np.isnan(out[1][:32].astype(np.float32)).any() and np.isnan(out[1][32:].astype(np.float32)).all()
    assert np.isnan(out[2][32:].astype(np.float32)).all()
    assert np.isnan(float(out[4][0])) and np.isnan(float(out[5][0]))
    assert np.all(args[0][32:] == 8) and np.all(args[1][32:] == 8)
