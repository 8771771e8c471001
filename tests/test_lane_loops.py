"""Lane loops (csrc/backends/host/lane_loops/): a kernel whose barriers and SIMD-group
functions sit where the splitter can see them runs each threadgroup as one loop
over its threads per stretch of code between them; anything else falls back to
fibers, with a note saying why.

Every test checks results against numpy or hand-worked values and the execution
mode the library reports. Compile errors must name the user's line and column
once, not again for the lane-loop copy of the kernel.
"""
import re

import numpy as np
import pytest

import mps_shim
from mps_shim import CompileError

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n"

SOURCE = HEAD + r"""
#define TG mem_flags::mem_threadgroup
#define IN_GROUP uint t [[thread_position_in_threadgroup]], uint i [[thread_position_in_grid]]

kernel void tree_sum(device float* out, constant float* x, constant uint& n, IN_GROUP,
                     uint g [[threadgroup_position_in_grid]], uint size [[threads_per_threadgroup]]) {
    threadgroup float tile[256];
    tile[t] = i < n ? x[i] : 0.0f;
    threadgroup_barrier(TG);
    for (uint s = 128; s > 0; s >>= 1) {
        if (t < s && t + s < size) tile[t] += tile[t + s];
        threadgroup_barrier(TG);
    }
    if (t == 0) out[g] = tile[0];
}

float twice(float v) { return 2.0f * v; }

kernel void carried(device float* out, constant float* x, IN_GROUP, uint size [[threads_per_threadgroup]]) {
    threadgroup float tile[64];
    float f = x[i];
    float4 v = float4(f, twice(f), 3.0f * f, 4.0f * f);
    uint u = i * 3u + 1u;
    device float* p = out + 5 * i;
    const float c = f + 0.5f;
    tile[t] = f;
    threadgroup_barrier(TG);
    f = tile[size - 1 - t];
    threadgroup_barrier(TG);
    tile[t] = f * 10.0f;
    metal::threadgroup_barrier(TG);
    p[0] = f; p[1] = v.x + v.y + v.z + v.w; p[2] = float(u);
    p[3] = c; p[4] = tile[(t + 1) % size];
}

kernel void group_scan(device uint* out, IN_GROUP, uint size [[threads_per_threadgroup]]) {
    threadgroup uint tile[64];
    uint mine = i;
    for (uint r = 1; r < size; r *= 2) {
        tile[t] = mine;
        threadgroup_barrier(TG);
        if (t >= r) mine += tile[t - r];
        threadgroup_barrier(TG);
    }
    out[i] = mine;
}

kernel void while_loops(device uint* out, constant uint& n, IN_GROUP) {
    threadgroup uint k, tile[64];
    threadgroup int m;
    uint w = 0;
    if (t == 0) { k = 0; m = int(n); }
    threadgroup_barrier(TG);
    while (k < n) {
        tile[t] = t + k;
        threadgroup_barrier(TG);
        w += tile[0];
        threadgroup_barrier(TG);
        if (t == 0) k += 1;
        threadgroup_barrier(TG);
    }
    uint d = 0;
    do {
        threadgroup_barrier(TG);
        d += 1;
        if (t == 0) m -= 1;
        threadgroup_barrier(TG);
    } while (m > 0);
    out[2 * i] = w; out[2 * i + 1] = d;
}

kernel void branches(device float* out, constant float* x, constant uint& mode, IN_GROUP,
                     uint g [[threadgroup_position_in_grid]], uint size [[threads_per_threadgroup]]) {
    threadgroup float tile[64];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float r;
    if (mode == 1 || (mode == 2 && g % 2 == 1)) {
        float v = tile[size - 1 - t];
        threadgroup_barrier(TG);
        tile[t] = v;
        threadgroup_barrier(TG);
        r = tile[t] + 1000.0f;
    } else {
        r = tile[(t + 1) % size];
        threadgroup_barrier(TG);
        r *= 2.0f;
    }
    out[i] = r;
}

kernel void returns(device uint* out, constant uint& n, constant uint& rounds, IN_GROUP,
                    uint size [[threads_per_threadgroup]]) {
    threadgroup uint tile[64];
    if (i >= n) return;
    uint base = 1000 * i;
    tile[t] = 1;
    threadgroup_barrier(TG);
    if (t % 3 == 0) { out[i] = 7; return; }
    tile[t] = 2;
    threadgroup_barrier(TG);
    uint total = 0;
    for (uint k = 0; k < min(size, n - (i - t)); ++k) total += tile[k];   // the threads that wrote
    for (uint r = 0; r < rounds; ++r) {
        if (t == 3 * r + 1) { out[i] = base + 100 + r; return; }
        threadgroup_barrier(TG);
    }
    out[i] = base + total;
}

// Records Metal's ids after a barrier; V is uint2 or uint3, WIDE(v) its uint3.
#define STORE3(o, k, v) o[k] = v.x; o[k + 1] = v.y; o[k + 2] = v.z;
#define IDS(NAME, V, WIDE, WIDE_SIZE)                                                                               \
kernel void NAME(device uint* out, V tpt [[thread_position_in_threadgroup]], V pos [[thread_position_in_grid]],     \
                 V tg [[threadgroup_position_in_grid]], V tptg [[threads_per_threadgroup]],                         \
                 V grid [[threads_per_grid]], uint idx [[thread_index_in_threadgroup]],                             \
                 uint sg [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {             \
    threadgroup uint tile[1024];                                                                                    \
    tile[idx] = idx;                                                                                                \
    threadgroup_barrier(TG);                                                                                        \
    const uint3 p = WIDE(pos), n = WIDE_SIZE(grid);                                                                 \
    device uint* o = out + 16 * ((p.z * n.y + p.y) * n.x + p.x);                                                    \
    STORE3(o, 0, WIDE(tpt)) STORE3(o, 3, p) STORE3(o, 6, WIDE(tg)) STORE3(o, 9, WIDE_SIZE(tptg))                    \
    o[12] = idx; o[13] = sg; o[14] = lane; o[15] = tile[idx];                                                       \
}
#define AS_IS(v) (v)
#define WITH_0(v) uint3(v, 0)
#define WITH_1(v) uint3(v, 1)
IDS(ids2, uint2, WITH_0, WITH_1)
IDS(ids3, uint3, AS_IS, AS_IS)

template <typename T>
kernel void reverse_add(device T* out, constant T* x, IN_GROUP, uint size [[threads_per_threadgroup]]) {
    threadgroup T tile[64];
    T v = x[i];
    tile[t] = v;
    threadgroup_barrier(TG);
    out[i] = tile[size - 1 - t] + v;
}
template [[host_name("reverse_add_float")]] kernel void reverse_add<float>(device float*, constant float*, uint, uint,
                                                                           uint);
template [[host_name("reverse_add_int")]] kernel void reverse_add<int>(device int*, constant int*, uint, uint, uint);

kernel void tiles(device float* out, constant float* x, constant uint& rounds, IN_GROUP) {
    constexpr uint N = 32;
    threadgroup float a[N];
    threadgroup float b[N];
    float acc = 0.0f;
    for (uint r = 0; r < rounds; ++r) {
        threadgroup float c[N];
        float mine = x[i] + float(r);   // declared in the loop body, used after its barriers
        a[t] = mine;
        b[t] = float(t * r);
        threadgroup_barrier(TG);
        c[t] = a[N - 1 - t] + b[(t + 1) % N];
        threadgroup_barrier(TG);
        acc += c[(t + 2) % N] * mine;
        threadgroup_barrier(TG);
    }
    out[i] = acc;
}

// Each computes out[i] = x[i] + x[mirror of i in its group of 32]. The first
// four need what lane loops grew later (a condition that differs between
// threads, SIMD-group functions, auto variables, a helper with a barrier);
// the rest stay on fibers.
kernel void varying_condition(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    if (t < 100000) { tile[t] = x[i]; threadgroup_barrier(TG); out[i] = x[i] + tile[31 - t]; }
}
kernel void calls_simd_sum(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    tile[t] = x[i]; threadgroup_barrier(TG);
    out[i] = x[i] + tile[31 - t] + 0.0f * simd_sum(x[i]);
}
kernel void auto_across(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    auto mine = x[i]; tile[t] = mine; threadgroup_barrier(TG);
    out[i] = mine + tile[31 - t];
}
void publish(threadgroup float* tile, uint t, float v) { tile[t] = v; threadgroup_barrier(TG); }
kernel void helper_barrier(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    publish(tile, t, x[i]);
    out[i] = x[i] + tile[31 - t];
}
kernel void varying_loop(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    for (uint k = t - t; k < 1; ++k) { tile[t] = x[i]; threadgroup_barrier(TG); out[i] = x[i] + tile[31 - t]; }
}
kernel void spin_wait(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    threadgroup atomic_uint ready;
    if (t == 0) atomic_store_explicit(&ready, 0u, memory_order_relaxed);
    threadgroup_barrier(TG);
    tile[t] = x[i];
    atomic_fetch_add_explicit(&ready, 1u, memory_order_relaxed);
    while (atomic_load_explicit(&ready, memory_order_relaxed) < 32u) {}
    out[i] = x[i] + tile[31 - t];
}
kernel void loop_variable_changed(device float* out, constant float* x, IN_GROUP) {
    threadgroup float tile[32];
    float acc = x[i];
    for (uint s = 0; s < 4;) {   // two rounds per thread
        tile[t] = x[i]; threadgroup_barrier(TG);
        acc += 0.5f * tile[31 - t]; threadgroup_barrier(TG);
        s += 2;
    }
    out[i] = acc;
}

kernel void no_barrier(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = 2.0f * x[i] + 1.0f;
}
"""

MIRRORS = ["varying_condition", "calls_simd_sum", "auto_across", "helper_barrier"]
FALLBACKS = {  # kernel -> a word its execution note must mention
    "varying_loop": "trip count", "spin_wait": "polls an atomic", "loop_variable_changed": "loop variable",
}


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


def assert_execution(library, name, mode):
    info = library.library.kernels[name]
    if mode == "lane_loops" and info["execution_note"].startswith("checked mode: a barrier under"):
        return  # checked mode (MPS_SHIM_CHECKED=1) runs a barrier under a varying condition on fibers, for synccheck
    assert info["execution"] == mode, info["execution_note"]
    assert bool(info["execution_note"]) == (mode == "fibers"), info["execution_note"]


def groups(n, group):
    """(first, size) of each threadgroup of a 1-D grid of n threads."""
    return [(g0, min(group, n - g0)) for g0 in range(0, n, group)]


# ---- lane loops ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 33, 256, 1000, 1024])
def test_tree_reduction_with_a_partial_last_group(lib, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    out = np.full(len(groups(n, 256)), np.nan, np.float32)
    lib.tree_sum(out, x, np.uint32(n), threads=n, group_size=256)
    expect = [x[g0:g0 + size].astype(np.float64).sum() for g0, size in groups(n, 256)]
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-4)
    assert_execution(lib, "tree_sum", "lane_loops")


@pytest.mark.parametrize("n, group", [(128, 64), (100, 64), (7, 7)])
def test_per_thread_variables_of_several_types_live_across_barriers(lib, n, group):
    x = np.arange(1, n + 1, dtype=np.float32)
    out = np.zeros((n, 5), np.float32)
    lib.carried(out, x, threads=n, group_size=group)
    expect = np.zeros((n, 5))
    for g0, size in groups(n, group):
        for t in range(size):
            i = g0 + t
            expect[i] = [x[g0 + size - 1 - t], 10 * x[i], 3 * i + 1, x[i] + 0.5, 10 * x[g0 + size - 1 - (t + 1) % size]]
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, "carried", "lane_loops")


@pytest.mark.parametrize("rounds", [0, 1, 4])
def test_loop_bound_by_a_scalar_with_threadgroup_arrays_in_its_body(lib, rounds):
    x = np.arange(64, dtype=np.float32)
    out = np.full(64, -1, np.float32)
    lib.tiles(out, x, np.uint32(rounds), threads=64, group_size=32)
    expect = np.zeros(64)
    for i in range(64):
        g0, u = i // 32 * 32, (i % 32 + 2) % 32
        expect[i] = sum((x[g0 + 31 - u] + r + (u + 1) % 32 * r) * (x[i] + r) for r in range(rounds))
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, "tiles", "lane_loops")


@pytest.mark.parametrize("n, group", [(64, 64), (150, 64), (5, 5)])
def test_loop_bound_by_threads_per_threadgroup(lib, n, group):
    out = np.zeros(n, np.uint32)
    lib.group_scan(out, threads=n, group_size=group)
    expect = np.concatenate([np.cumsum(np.arange(g0, g0 + size)) for g0, size in groups(n, group)])
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, "group_scan", "lane_loops")


@pytest.mark.parametrize("rounds", [0, 1, 6])
def test_while_and_do_while_loops_with_barriers(lib, rounds):
    out = np.zeros(80, np.uint32)
    lib.while_loops(out, np.uint32(rounds), threads=40, group_size=16)
    np.testing.assert_array_equal(out[0::2], rounds * (rounds - 1) // 2)   # w: sum of k over the while rounds
    np.testing.assert_array_equal(out[1::2], max(rounds, 1))              # d: do-while runs at least once
    assert_execution(lib, "while_loops", "lane_loops")


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_uniform_if_else_around_barriers(lib, mode):
    n, group = 96, 32
    x = np.arange(n, dtype=np.float32) * 3
    out = np.zeros(n, np.float32)
    lib.branches(out, x, np.uint32(mode), threads=n, group_size=group)
    expect = np.zeros(n)
    for g, (g0, size) in enumerate(groups(n, group)):
        for t in range(size):
            reverse = mode == 1 or (mode == 2 and g % 2 == 1)   # mode 2 takes both branches
            expect[g0 + t] = x[g0 + size - 1 - t] + 1000 if reverse else 2 * x[g0 + (t + 1) % size]
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, "branches", "lane_loops")


@pytest.mark.parametrize("rounds", [0, 2])
def test_returned_threads_do_not_run_after_a_barrier(lib, rounds):
    n, live, group = 64, 50, 24   # threads from `live` on return before the first barrier
    out = np.full(n, 12345, np.uint32)
    lib.returns(out, np.uint32(live), np.uint32(rounds), threads=n, group_size=group)
    expect = np.full(n, 12345, np.int64)
    for g0, size in groups(n, group):
        total = sum(1 if t % 3 == 0 else 2 for t in range(min(size, live - g0)))
        for i in range(g0, min(g0 + size, live)):
            t = i - g0
            if t % 3 == 0:
                expect[i] = 7
            elif t % 3 == 1 and t // 3 < rounds:
                expect[i] = 1000 * i + 100 + t // 3
            else:
                expect[i] = 1000 * i + total
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, "returns", "lane_loops")


def ids_reference(grid, group):
    """The columns of ids2/ids3: Metal's ids, x fastest. An edge group's threads_per_threadgroup
    is its actual size (DESIGN.md), and its thread indices count within that size."""
    out = np.zeros((grid[2], grid[1], grid[0], 16), np.int64)
    for z in range(grid[2]):
        for y in range(grid[1]):
            for x in range(grid[0]):
                p = (x, y, z)
                t = tuple(p[a] % group[a] for a in range(3))
                g = tuple(p[a] // group[a] for a in range(3))
                w, h, d = (min(group[a], grid[a] - g[a] * group[a]) for a in range(3))
                idx = t[0] + t[1] * w + t[2] * w * h
                out[z, y, x] = [*t, *p, *g, w, h, d, idx, idx // 32, idx % 32, idx]
    return out.reshape(-1, 16)


@pytest.mark.parametrize("grid, group", [((16, 12, 1), (8, 6, 1)), ((32, 4, 1), (16, 4, 1)),
                                         ((8, 8, 4), (4, 4, 4)), ((12, 6, 6), (6, 3, 2)),
                                         # groups along y or z only, and edge groups that shrink to one axis
                                         ((4, 32, 1), (1, 16, 1)), ((2, 2, 24), (1, 1, 8)), ((9, 8, 1), (8, 4, 1)),
                                         ((3, 5, 7), (2, 4, 4))])
def test_thread_ids_after_a_barrier(lib, grid, group):
    for kernel in (["ids2"] if grid[2] == 1 else []) + ["ids3"]:
        dims = 2 if kernel == "ids2" else 3
        out = np.zeros(int(np.prod(grid)) * 16, np.uint32)
        getattr(lib, kernel)(out, threads=grid[:dims], group_size=group[:dims])
        np.testing.assert_array_equal(out.reshape(-1, 16), ids_reference(grid, group), err_msg=kernel)
        assert_execution(lib, kernel, "lane_loops")


@pytest.mark.parametrize("name, dtype", [("reverse_add_float", np.float32), ("reverse_add_int", np.int32)])
def test_template_instantiations(lib, name, dtype):
    x = (np.arange(40) * 7 - 100).astype(dtype)
    out = np.zeros(40, dtype)
    getattr(lib, name)(out, x, threads=40, group_size=16)
    expect = np.concatenate([x[g0:g0 + size][::-1] + x[g0:g0 + size] for g0, size in groups(40, 16)])
    np.testing.assert_array_equal(out, expect)
    assert_execution(lib, name, "lane_loops")


# ---- fallbacks ----------------------------------------------------------------------------------------------------

_RACY = pytest.mark.checked_reports(reason="spin_wait orders threadgroup memory with relaxed atomics, not a barrier: "
                                           "racecheck reports it")


@pytest.mark.parametrize("name", MIRRORS + [pytest.param(n, marks=_RACY) if n == "spin_wait" else n
                                            for n in sorted(FALLBACKS)])
def test_divergence_simd_auto_and_helpers_on_lane_loops_the_rest_on_fibers(lib, name):
    x = np.arange(64, dtype=np.float32) ** 2
    out = np.zeros(64, np.float32)
    getattr(lib, name)(out, x, threads=64, group_size=32)
    np.testing.assert_array_equal(out, x + x.reshape(2, 32)[:, ::-1].reshape(-1))
    assert_execution(lib, name, "fibers" if name in FALLBACKS else "lane_loops")
    if name in FALLBACKS:
        assert FALLBACKS[name] in lib.library.kernels[name]["execution_note"]


def test_a_kernel_without_barriers_stays_independent(lib):
    x = np.arange(100, dtype=np.float32)
    out = np.zeros(100, np.float32)
    lib.no_barrier(out, x, threads=100, group_size=32)
    np.testing.assert_array_equal(out, 2 * x + 1)
    assert_execution(lib, "no_barrier", "independent")


# ---- calls that do not name the function they run ------------------------------------------------------------------

# A function passed as a template argument (ggml's kernel_mul_mv_id<mmv_fn<impl>>) or a callable object
# (a functor type's operator(), a functor parameter) may reach SIMD-group functions that the call's name
# does not lead to: such calls exchange values between lanes (lane loops evaluate them for all lanes at once),
# and a kernel whose possible callees are all plain stays independent.
INDIRECT = HEAD + r"""
float lane_sum(float v) { return simd_sum(v); }
typedef float (sum_t)(float);
template <sum_t f>
float through(float v) { return f(v); }
struct SumOp { float operator()(float v) const { return simd_sum(v); } };
template <typename F>
float apply(F f, float v) { return f(v); }

template <sum_t f>
kernel void via_template_argument(device float* out, uint i [[thread_position_in_grid]]) { out[i] = f(float(i % 32)); }
template [[host_name("via_template_argument")]] kernel void via_template_argument<through<lane_sum>>(device float*, uint);

template <typename Op>
kernel void via_functor_type(device float* out, uint i [[thread_position_in_grid]]) { out[i] = Op()(float(i % 32)); }
template [[host_name("via_functor_type")]] kernel void via_functor_type<SumOp>(device float*, uint);

kernel void via_functor_parameter(device float* out, uint i [[thread_position_in_grid]]) {
    out[i] = apply(SumOp(), float(i % 32));
}

template <sum_t f>
kernel void with_barrier(device float* out, uint i [[thread_position_in_grid]], uint t [[thread_index_in_threadgroup]]) {
    threadgroup float tile[32];
    tile[t] = float(i % 32);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[i] = f(tile[31 - t]);
}
template [[host_name("with_barrier")]] kernel void with_barrier<lane_sum>(device float*, uint, uint);
"""

PLAIN_TARGET = HEAD + r"""
float twice(float v) { return 2.0f * v; }
typedef float (op_t)(float);
template <op_t f>
kernel void via_template_argument(device float* out, uint i [[thread_position_in_grid]]) { out[i] = f(float(i)); }
template [[host_name("via_template_argument")]] kernel void via_template_argument<twice>(device float*, uint);
"""

WAITING_TARGET = HEAD + r"""
void publish(threadgroup float* tile, uint t, float v) { tile[t] = v; threadgroup_barrier(mem_flags::mem_threadgroup); }
typedef void (publish_t)(threadgroup float*, uint, float);
template <publish_t f>
kernel void via_template_argument(device float* out, uint i [[thread_position_in_grid]],
                                  uint t [[thread_index_in_threadgroup]]) {
    threadgroup float tile[32];
    f(tile, t, float(i));
    out[i] = tile[31 - t];
}
template [[host_name("via_template_argument")]] kernel void via_template_argument<publish>(device float*, uint, uint);
"""


@pytest.mark.parametrize("name", ["via_template_argument", "via_functor_type", "via_functor_parameter", "with_barrier"])
def test_simd_functions_reached_through_a_call_that_names_another_function(name):
    lib = mps_shim.compile_shader(INDIRECT)
    out = np.zeros(64, np.float32)
    getattr(lib, name)(out, threads=64, group_size=32)
    np.testing.assert_array_equal(out, np.full(64, sum(range(32)), np.float32))
    assert_execution(lib, name, "lane_loops")


def test_a_barrier_reached_through_a_template_argument_runs_on_fibers():
    # the splitter inlines functions that reach a barrier; one not named at the call cannot be
    lib = mps_shim.compile_shader(WAITING_TARGET)
    out = np.zeros(64, np.float32)
    lib.via_template_argument(out, threads=64, group_size=32)
    np.testing.assert_array_equal(out, np.arange(64, dtype=np.float32).reshape(2, 32)[:, ::-1].reshape(-1))
    assert_execution(lib, "via_template_argument", "fibers")
    assert "'f'" in lib.library.kernels["via_template_argument"]["execution_note"]


def test_an_indirect_call_of_plain_functions_stays_independent():
    lib = mps_shim.compile_shader(PLAIN_TARGET)
    out = np.zeros(64, np.float32)
    lib.via_template_argument(out, threads=64, group_size=32)
    np.testing.assert_array_equal(out, 2 * np.arange(64, dtype=np.float32))
    assert_execution(lib, "via_template_argument", "independent")


# ---- compile errors -----------------------------------------------------------------------------------------------

LINE_ERROR = HEAD + r"""
kernel void k(device float* out, uint t [[thread_position_in_threadgroup]]) {
    threadgroup float tile[32];
    float v = out[t];
    tile[t] = v;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    v += tile[31 - t];
    out[t] = v + no_such_variable;
}
"""


def test_a_compile_error_after_a_barrier_names_its_line():
    with pytest.raises(CompileError) as info:
        mps_shim.compile_shader(LINE_ERROR)
    msg = str(info.value)
    line = next(n for n, text in enumerate(LINE_ERROR.splitlines(), 1) if "no_such_variable" in text)
    assert f"library.metal:{line}:" in msg, msg
    assert "no_such_variable" in msg


# ---- what lane loops cannot share: kernels that change their parameters, pointers into locals --------------------

BUGS = HEAD + r"""
#define TG mem_flags::mem_threadgroup
kernel void advanced_pointer(device float* out, uint t [[thread_position_in_threadgroup]],
                             uint g [[threadgroup_position_in_grid]]) {
    out += g * 4;
    threadgroup_barrier(TG);
    out[t] = float(t + 1);
}
kernel void reassigned_position(device float* out, uint i [[thread_position_in_grid]]) {
    i = 2 * i;
    threadgroup_barrier(TG);
    out[i] = float(i + 1);
}
kernel void changed_group_size(device float* out, uint i [[thread_position_in_grid]],
                               uint size [[threads_per_threadgroup]]) {
    size += 1;
    threadgroup_barrier(TG);
    out[i] = float(size);
}
kernel void pointer_to_local(device float* out, uint i [[thread_position_in_grid]]) {
    float a = float(i + 1);
    thread float* p = &a;
    threadgroup_barrier(TG);
    out[i] = *p;
}
"""


@pytest.fixture(scope="module")
def bugs():
    return mps_shim.compile_shader(BUGS)


@pytest.mark.parametrize("name, expect", [
    ("advanced_pointer", [1, 2, 3, 4, 1, 2, 3, 4]),   # the bug writes out[16:20] instead of out[4:8]
    ("reassigned_position", [1, 0, 3, 0, 5, 0, 7, 0, 9, 0, 11, 0, 13, 0, 15, 0]),
    ("changed_group_size", [5] * 8),
])
def test_kernel_parameters_are_each_threads_own_copy(bugs, name, expect):
    out = np.zeros(32, np.float32)   # room for the wrong writes
    getattr(bugs, name)(out, threads=8, group_size=4)
    np.testing.assert_array_equal(out, expect + [0] * (32 - len(expect)))
    assert_execution(bugs, name, "fibers")  # lane loops would share one copy between the group's threads
    assert "parameter" in bugs.library.kernels[name]["execution_note"]


def test_a_pointer_to_a_local_lives_across_a_barrier(bugs):
    out = np.zeros(8, np.float32)
    bugs.pointer_to_local(out, threads=8, group_size=8)
    np.testing.assert_array_equal(out, np.arange(1, 9))
    assert_execution(bugs, "pointer_to_local", "fibers")  # the local would end with its loop
    assert "point into" in bugs.library.kernels["pointer_to_local"]["execution_note"]


def test_a_const_local_sizes_a_threadgroup_array():
    lib = mps_shim.compile_shader(HEAD + r"""
kernel void k(device float* out, uint t [[thread_position_in_threadgroup]]) {
    const uint N = 64;
    threadgroup float tile[N];
    tile[t] = float(t);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = tile[N - 1 - t];
}
""")
    out = np.zeros(64, np.float32)
    lib.k(out, threads=64, group_size=64)
    np.testing.assert_array_equal(out, np.arange(64)[::-1])
    assert lib.library.kernels["k"]["execution"] == "lane_loops"


DIAGNOSTIC_CASES = {
    "type of a lane variable": """
kernel void k(device float* out, uint t [[thread_position_in_threadgroup]]) {
    flaot v = out[t];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = v;
}
""",
    "do-while condition": """
kernel void k(device float* out, uint t [[thread_position_in_threadgroup]]) {
    threadgroup uint m;
    if (t == 0) m = 0;
    do {
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (t == 0) m += 1;
        threadgroup_barrier(mem_flags::mem_threadgroup);
    } while (m < no_such_bound);
}
""",
    "statement after a barrier": LINE_ERROR[len(HEAD):],
}


@pytest.mark.parametrize("case", sorted(DIAGNOSTIC_CASES))
def test_every_diagnostic_points_at_the_name_it_reports(case):
    src = HEAD + DIAGNOSTIC_CASES[case]
    with pytest.raises(CompileError) as info:
        mps_shim.compile_shader(src)
    lines = src.splitlines()
    found = re.findall(r"library\.metal:(\d+):(\d+): error: [‘'](\w+)[’']", str(info.value))
    assert found, str(info.value)
    for line, column, name in found:
        text = lines[int(line) - 1] if int(line) <= len(lines) else ""
        assert text[int(column) - 1:].startswith(name), (line, column, name, str(info.value))


# ---- the same kernels on fibers (MPS_SHIM_LANE_LOOPS=0) give the same bits -----------------------------------------

def _both_ways(monkeypatch, source):
    lanes = mps_shim.compile_shader(source)
    monkeypatch.setenv("MPS_SHIM_LANE_LOOPS", "0")
    fibers = mps_shim.compile_shader(source)
    monkeypatch.delenv("MPS_SHIM_LANE_LOOPS")
    return lanes, fibers


@pytest.mark.parametrize("n, group", [(64, 32), (45, 45), (70, 64), (130, 128), (1, 1)])
@pytest.mark.checked_reports(reason="shuffles in partial SIMD-groups read inactive lanes on purpose: mps_shim's answer is tested")
def test_simd_functions_match_the_fiber_engine_bit_for_bit(monkeypatch, n, group):
    import importlib.util
    import pathlib
    spec = importlib.util.spec_from_file_location("tg", pathlib.Path(__file__).with_name("test_threadgroups.py"))
    tg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tg)
    lanes, fibers = _both_ways(monkeypatch, tg.SOURCE)
    for name, columns in [("simd_functions", 24), ("more_simd_functions", 16)]:  # COLUMNS, MORE_COLUMNS there
        assert lanes.library.kernels[name]["execution"] == "lane_loops"
        assert fibers.library.kernels[name]["execution"] == "fibers"
        assert "MPS_SHIM_LANE_LOOPS" in fibers.library.kernels[name]["execution_note"]
        x = np.random.default_rng(n).integers(0, 32, n).astype(np.float32)
        a, b = np.zeros(n * columns, np.float32), np.zeros(n * columns, np.float32)
        getattr(lanes, name)(a, x, threads=n, group_size=group)
        getattr(fibers, name)(b, x, threads=n, group_size=group)
        np.testing.assert_array_equal(a, b)


def test_lane_loop_and_fiber_modules_are_cached_apart(monkeypatch):
    lanes, fibers = _both_ways(monkeypatch, SOURCE)
    again = mps_shim.compile_shader(SOURCE)
    assert lanes.library.kernels["tree_sum"]["execution"] == "lane_loops"
    assert fibers.library.kernels["tree_sum"]["execution"] == "fibers"
    assert again.library.kernels["tree_sum"]["execution"] == "lane_loops"


# Sum, max and argmax of each row through helpers with barriers, in Inductor's
# {1, R} shape. Kept in this shape because it caught a glibc bug (before 2.39):
# the lookup that first allocates a thread's copy of a dlopen'ed module's
# thread_locals clobbered vector registers, so with TLS descriptors and
# without claim_thread_locals() the first groups of each worker came out wrong.
ROW_REDUCE = HEAD + r"""
template <typename T>
T group_sum(threadgroup T* data, T val, uint idx, uint size) {
  T rc = simd_sum(val);
  if (idx % 32 == 0) data[idx / 32] = rc;
  if (size > 32) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (idx < (size + 31) / 32) {
      T rc1 = simd_sum(data[idx]);
      if (idx == 0) data[0] = rc1;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return data[0];
}
template <typename T>
T group_max(threadgroup T* data, T val, uint idx, uint size) {
  T rc = simd_max(val);
  if (idx % 32 == 0) data[idx / 32] = rc;
  if (size > 32) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (idx < (size + 31) / 32) {
      T rc1 = simd_max(data[idx]);
      if (idx == 0) data[0] = rc1;
    }
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return data[0];
}
template <typename T>
long group_argmax(threadgroup T* vals, threadgroup long* idxs, T val, long idx_val, uint idx, uint size) {
  T m = simd_max(val);
  ulong vote = ulong(simd_ballot(val == m));
  long best = simd_broadcast(idx_val, ushort(ctz(vote)));
  if (idx % 32 == 0) { vals[idx / 32] = m; idxs[idx / 32] = best; }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (idx == 0) {
    T bv = vals[0]; long bi = idxs[0];
    for (uint s = 1; s < (size + 31) / 32; ++s) if (vals[s] > bv) { bv = vals[s]; bi = idxs[s]; }
    idxs[0] = bi;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return idxs[0];
}
[[max_total_threads_per_threadgroup(1024)]]
kernel void row_reduce(device float* sums, device float* maxes, device long* argmaxes, constant float* x,
                       constant long& cols, uint2 pos [[thread_position_in_grid]],
                       uint2 tid [[thread_position_in_threadgroup]], uint2 size [[threads_per_threadgroup]]) {
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
    const float s = group_sum(tmp_sum, acc, tid.y, size.y);
    const float m = group_max(tmp_max, best, tid.y, size.y);
    const long a = group_argmax(tmp_arg, tmp_idx, best, best_idx, tid.y, size.y);
    if (tid.y == 0) { sums[row] = s; maxes[row] = m; argmaxes[row] = a; }
}
"""


@pytest.mark.parametrize("cols", [1, 2, 33, 1000])
def test_first_dispatch_of_a_fresh_module_on_every_worker(cols):
    # A source no other test loads, so every worker meets this module's thread_locals first here.
    lib = mps_shim.compile_shader(ROW_REDUCE + f"// cols {cols}\n")
    assert_execution(lib, "row_reduce", "lane_loops")
    rows = 6
    x = np.random.default_rng(cols).permutation(rows * cols).astype(np.float32).reshape(rows, cols) + 1
    sums, maxes, argmaxes = np.zeros(rows, np.float32), np.zeros(rows, np.float32), np.zeros(rows, np.int64)
    group = min(cols, 1024)
    lib.row_reduce(sums, maxes, argmaxes, x, cols, threads=(rows, group), group_size=(1, group))
    np.testing.assert_allclose(sums, x.astype(np.float64).sum(1), rtol=1e-5)
    np.testing.assert_array_equal(maxes, x.max(1))
    np.testing.assert_array_equal(argmaxes, x.argmax(1))


# ---- stretches where few threads run visit only those ---------------------------------------------------------------

FEW_RUN = HEAD + """
kernel void few_run(device float* out, constant float* x,
                    uint3 pos [[thread_position_in_grid]], uint3 grid [[threads_per_grid]],
                    uint t [[thread_index_in_threadgroup]], uint3 lid [[thread_position_in_threadgroup]]) {
    const uint i = (pos.z * grid.y + pos.y) * grid.x + pos.x;
    const float v = x[i];
    float a = -1.0f, b = -1.0f;
    if (t % 5 == 0) {  // a fifth of the group: the SIMD statement visits just those threads
        a = simd_sum(v) + float(lid.x + lid.y * 8 + lid.z * 512) * 2048.0f;  // exact in float
    }
    if (t % 3 == 1) { out[i] = a; return; }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (t % 7 == 0) {  // of the two thirds still running, a seventh
        b = simd_max(v + float(lid.y));
    }
    out[i] = a - b;
}
"""


def few_run_reference(x, grid, group):
    ids = ids_reference(grid, group)  # columns 0-2: thread position in the group, 12: index in the group
    lid, t = ids[:, 0:3], ids[:, 12]
    g = ids[:, 6:9]
    key = [tuple(g[i]) + (t[i] // 32,) for i in range(len(t))]  # one SIMD-group
    expect = np.empty(len(t), np.float64)
    for i in range(len(t)):
        mates = [j for j in range(len(t)) if key[j] == key[i]]
        a = b = -1.0
        if t[i] % 5 == 0:
            a = sum(float(x[j]) for j in mates if t[j] % 5 == 0) + (lid[i, 0] + lid[i, 1] * 8 + lid[i, 2] * 512) * 2048.0
        if t[i] % 3 == 1:
            expect[i] = a
            continue
        if t[i] % 7 == 0:
            b = max(float(x[j]) + lid[j, 1] for j in mates if t[j] % 7 == 0 and t[j] % 3 != 1)
        expect[i] = a - b
    return expect


@pytest.mark.parametrize("grid, group", [((200, 1, 1), (64, 1, 1)), ((1, 100, 1), (1, 96, 1)),
                                         ((24, 10, 1), (8, 8, 1)), ((6, 10, 8), (4, 4, 6))])
def test_stretches_where_few_threads_run(monkeypatch, grid, group):
    lanes, fibers = _both_ways(monkeypatch, FEW_RUN)
    assert lanes.library.kernels["few_run"]["execution"] == "lane_loops"
    n = int(np.prod(grid))
    x = np.random.default_rng(n).integers(0, 64, n).astype(np.float32)
    dims = 1 if grid[1:] == (1, 1) else (2 if grid[2] == 1 else 3)
    a, b = np.zeros(n, np.float32), np.zeros(n, np.float32)
    lanes.few_run(a, x, threads=grid[:dims], group_size=group[:dims])
    fibers.few_run(b, x, threads=grid[:dims], group_size=group[:dims])
    np.testing.assert_array_equal(a, few_run_reference(x, grid, group))
    np.testing.assert_array_equal(a, b)
