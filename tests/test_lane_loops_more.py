"""Lane loops under pressure: replayed SIMD statements, divergent branches,
inlined group functions (csrc/backends/host/lane_loops/, mps_host_metal.h).

Every kernel of SOURCE is compiled twice: as written (it must run as lane
loops) and with FORCE opening a switch that holds a simdgroup_barrier, which
keeps it on fibers. Results are checked against numpy references worked out
lane by lane with Apple's rules: SIMD-groups of 32; only active lanes (present,
not returned, on the same side of a branch) take part; a shuffle whose source
lane is outside the SIMD-group keeps the lane's own value. Fibers do not model
lanes on two different SIMD operations at once (mps_host_fibers.h), so kernels
that may put them there (SIMD calls in both arms of a branch, a helper some lanes
leave early) are checked on lane loops only.
The kernels at the end each broke lane loops once (divergent SIMD calls in
`?:`, side effects replayed or shared, returns inside branches); they stay as
regression tests.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import mps_shim
from mps_shim import DispatchError

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n#define TG mem_flags::mem_threadgroup\n" + (
    "#define IDS uint i [[thread_position_in_grid]], uint t [[thread_position_in_threadgroup]], "
    "uint lane [[thread_index_in_simdgroup]], uint size [[threads_per_threadgroup]]\n")
LANE_LOOPS = "#define FORCE\n"
FIBERS = "#define FORCE switch (0) { default: metal::simdgroup_barrier(metal::mem_flags::mem_none); }\n"

# Fibers' known limit (docs/architecture.md, Threadgroups, "Known limits"): a SIMD operation is matched
# across lanes by its order in each thread, so SIMD calls in both arms of a branch, or after a helper some
# lanes leave early, pair up wrongly on fibers. Tests of such kernels check lane loops alone, and the engine
# cross-check stays off for them; test_divergent_simd_kernels_differ_on_fibers shows the difference.

SOURCE = r"""
float shuffle_tree(float v) {
    for (ushort d = 16; d > 0; d /= 2) v += simd_shuffle_down(v, d);
    return v;
}
kernel void replayed(device float* out, device uint* bits, constant float* x, IDS) {
    FORCE
    threadgroup float tile[1024];
    const float v = x[i];
    tile[t] = v; threadgroup_barrier(TG);
    device float* o = out + 10 * i;
    float s = simd_sum(v); auto e = simd_prefix_exclusive_sum(v);
    o[2] = simd_shuffle_down(tile[t], 3); o[3] = 100.0f; o[3] += simd_broadcast(v, 0);
    const uint b = uint(static_cast<ulong>(simd_ballot(v > 2.0f)));
    float spread = simd_max(v) - simd_min(v);                  // two operations
    float nested = simd_sum(v * simd_max(v));                  // the second needs the first
    float r = shuffle_tree(v);                                 // five operations in a helper
    o[8] = lane % 2 == 0 ? simd_sum(v) : -1.0f;                // last before the barrier (fibers)
    threadgroup_barrier(TG);
    o[0] = s; o[1] = e; o[4] = spread; o[5] = nested; o[6] = tile[size - 1 - t]; o[7] = simd_broadcast_first(v);
    o[9] = r; bits[i] = b;
}
template <typename T>
kernel void typed(device T* out, constant T* x, IDS) {
    FORCE
    const T v = x[i];
    T s = simd_sum(v); T p = simd_prefix_inclusive_sum(v); T m = simd_max(v) + simd_shuffle_xor(v, 1);
    out[4 * i] = s; out[4 * i + 1] = p; out[4 * i + 2] = m; out[4 * i + 3] = simd_broadcast_first(v);
}
#define TYPED(T) template [[host_name("typed_" #T)]] kernel void typed<T>(device T*, constant T*, uint, uint, uint, \
                                                                           uint);
TYPED(half) TYPED(int) TYPED(float2) TYPED(float4) TYPED(half4)

#define SIX(v) simd_sum(v) + simd_max(v) + simd_min(v) + simd_sum(2 * v) + simd_max(2 * v) + simd_min(2 * v)
#define OPS(NAME, MORE) kernel void NAME(device float* out, constant float* x, IDS) { \
    FORCE const float v = x[i]; float s = SIX(v) + simd_sum(3 * v) + simd_max(3 * v) MORE; out[i] = s; }
OPS(ops8, ) OPS(ops9, + simd_min(3 * v))

kernel void loop_if(device float* out, constant float* x, constant uint& rounds, IDS) {
    FORCE
    float acc = 0.0f;
    for (uint r = 0; r < rounds; ++r) {
        const float v = x[i] + float(r);
        if ((lane + r) % 3 == 0) acc += simd_sum(v);
        else acc -= simd_max(v) + simd_prefix_exclusive_sum(1.0f);
    }
    out[i] = acc;
}
kernel void nested_ifs(device float* out, constant float* x, IDS) {
    FORCE
    float a = x[i], c = 0.0f;
    if (lane < 20) {
        if (lane % 2 == 1) a = simd_sum(a);
        else { a = simd_min(a); c = simd_sum(1.0f); }
        c += 100.0f * simd_prefix_exclusive_sum(1.0f);
    } else if (a > 0.0f) {
        a = -simd_sum(a);                                      // the else below must not see the new a
    } else {
        a = simd_max(a) + 1000.0f;
    }
    out[2 * i] = a; out[2 * i + 1] = c;
}
kernel void returns(device float* out, device uint* bits, constant float* x, constant uint& n, IDS) {
    FORCE
    threadgroup float tile[1024];
    if (i >= n) return;
    if (lane % 4 == 3) { out[2 * i] = -1.0f; return; }
    tile[t] = x[i]; threadgroup_barrier(TG);
    const float v = tile[t];
    float s = simd_sum(v); const uint count = simd_sum(1u);
    uint b = uint(static_cast<ulong>(simd_ballot(true))); float pre = simd_prefix_exclusive_sum(v);
    if (v > 0.0f) { if (lane % 4 == 1) return; s += 1000.0f * simd_sum(v); }
    out[2 * i] = s; out[2 * i + 1] = pre; bits[2 * i] = count; bits[2 * i + 1] = b;
}

float mirror(threadgroup float* tile, float v, uint t, uint size) {
    tile[t] = v; threadgroup_barrier(TG);
    const float r = tile[size - 1 - t]; threadgroup_barrier(TG);
    return r;
}
kernel void twice(device float* out, constant float* x, IDS) {
    FORCE
    threadgroup float tile[1024], other[1024];
    float a = mirror(tile, x[i], t, size);                    // per thread
    float b = mirror(other, x[0] * 2.0f, t, size);            // one value for the group
    auto c = mirror(tile, a + b + float(t), t, size);
    for (uint r = 1; r < 3; ++r) { float m = mirror(other, float(r), t, size); b += m * float(r); }
    out[3 * i] = a; out[3 * i + 1] = b; out[3 * i + 2] = c;
}
float early(threadgroup float* tile, float v, uint t, uint size) {
    tile[t] = v; threadgroup_barrier(TG);
    if (t % 3 == 0) return -v;                                 // held out until the function ends
    const float s = simd_sum(v);
    return s + tile[(t + 1) % size];
}
kernel void early_out(device float* out, constant float* x, IDS) {
    FORCE
    threadgroup float tile[1024];
    float r = early(tile, x[i], t, size);
    out[i] = r + simd_sum(1.0f);                               // every thread is back
}
template <typename T>
float scaled_total(threadgroup T* tile, float scale, uint t, uint size) {   // T only in a pointer
    tile[t] = T(t); threadgroup_barrier(TG);
    float total = 0.0f;
    for (uint k = 0; k < size; ++k) total += float(tile[k]);
    threadgroup_barrier(TG); return scale * total;
}
template <typename F>
float group_reduce(threadgroup float* tile, float v, uint t, uint size, F op) {
    const float r = op(v);
    if (t % 32 == 0) tile[t / 32] = r; threadgroup_barrier(TG);
    if (t < (size + 31) / 32) { const float w = op(tile[t]); if (t == 0) tile[0] = w; }
    threadgroup_barrier(TG); return tile[0];
}
kernel void deduced(device float* out, constant float* x, IDS) {
    FORCE
    threadgroup int ints[1024];
    threadgroup half halves[1024];
    threadgroup float tile[32];
    float a = scaled_total(ints, x[i], t, size);
    float b = scaled_total(halves, 2.0f, t, size);
    float m = group_reduce(tile, x[i], t, size, [](float u) { return simd_max(u); });
    float s = group_reduce(tile, x[i], t, size, [](float u) { return simd_sum(u); });
    out[4 * i] = a; out[4 * i + 1] = b; out[4 * i + 2] = m; out[4 * i + 3] = s;
}

// Lane loops decline these; fibers run them.
kernel void changes_lane(device float* out, constant float* x, IDS) {
    lane ^= 1u; out[i] = simd_shuffle(x[i], ushort(lane));
}
kernel void points_into_local(device float* out, constant float* x, IDS) {
    float a = x[i]; thread float* p = &a; const float s = simd_sum(*p); *p += s; out[i] = a;
}
"""
FALLBACKS = {"changes_lane": "parameter 'lane'", "points_into_local": "point into"}
BOTH, LANES = ("lane_loops", "fibers"), ("lane_loops",)


@pytest.fixture(scope="module")
def libs():
    return {"lane_loops": mps_shim.compile_shader(HEAD + LANE_LOOPS + SOURCE),
            "fibers": mps_shim.compile_shader(HEAD + FIBERS + SOURCE)}


def assert_execution(lib, name, mode):
    info = lib.library.kernels[name]
    assert info["execution"] == mode, info["execution_note"]
    assert bool(info["execution_note"]) == (mode == "fibers"), info["execution_note"]


def check(libs, name, expect, outs, *inputs, threads, group_size, modes=BOTH):
    """Runs `name` per mode on copies of `outs`, compares them with `expect` (None: skip) and checks the mode."""
    results = {}
    for mode in modes:
        copies = results[mode] = [o.copy() for o in outs]
        getattr(libs[mode], name)(*copies, *inputs, threads=threads, group_size=group_size)
        for out, ref in zip(copies, expect):
            if ref is not None:
                np.testing.assert_array_equal(out, ref, err_msg=f"{name} on {mode}")
        assert_execution(libs[mode], name, "fibers" if name in FALLBACKS else mode)
    return results


def groups(n, group):
    """(first, size) of each threadgroup of a 1-D grid of n threads."""
    return [(g0, min(group, n - g0)) for g0 in range(0, n, group)]


def simd_groups(n, group):
    """Grid indices of each SIMD-group of a 1-D grid (partial groups included)."""
    return [np.arange(g0 + s, g0 + min(s + 32, size)) for g0, size in groups(n, group) for s in range(0, size, 32)]


def shuffle_down(v, d):
    return np.array([v[l + d] if l + d < len(v) else v[l] for l in range(len(v))])


def ints(n, seed, lo=-8, hi=9, dtype=np.float32):
    return np.random.default_rng(seed).integers(lo, hi, n).astype(dtype)


# ---- replayed statements --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("group, n", [(1, 3), (7, 19), (33, 80), (100, 250), (1024, 1500)])
@pytest.mark.checked_reports(reason="shuffles in partial SIMD-groups read inactive lanes on purpose: mps_shim's answer is tested")
def test_replayed_statements_in_partial_groups(libs, group, n):
    x = ints(n, group)
    expect, bits = np.zeros((n, 10)), np.zeros(n, np.int64)
    for g0, size in groups(n, group):
        expect[g0:g0 + size, 6] = x[g0:g0 + size][::-1]
    for idx in simd_groups(n, group):
        v = x[idx].astype(np.float64)
        expect[idx, :6] = np.stack([v.sum() + 0 * v, np.cumsum(v) - v, shuffle_down(v, 3), 100 + v[0] + 0 * v,
                                    v.max() - v.min() + 0 * v, (v * v.max()).sum() + 0 * v], 1)
        expect[idx, 7], bits[idx] = v[0], sum(1 << l for l in range(len(v)) if v[l] > 2)
        expect[idx, 8] = np.where(np.arange(len(v)) % 2 == 0, v[::2].sum(), -1)
        for d in (16, 8, 4, 2, 1):
            v = v + shuffle_down(v, d)
        expect[idx, 9] = v
    check(libs, "replayed", [expect, bits], [np.zeros((n, 10), np.float32), np.zeros(n, np.uint32)], x,
          threads=n, group_size=group)


@pytest.mark.parametrize("name, dtype, width", [("typed_half", np.float16, 1), ("typed_int", np.int32, 1),
                                                ("typed_float2", np.float32, 2), ("typed_float4", np.float32, 4),
                                                ("typed_half4", np.float16, 4)])
def test_half_int_and_vector_values(libs, name, dtype, width):
    n, group = 100, 40   # SIMD-groups of 32, 8, 32, 8, 20 lanes
    x = ints(n * width, width, dtype=dtype).reshape(n, width)
    expect = np.zeros((n, 4, width))
    for idx in simd_groups(n, group):
        v = x[idx].astype(np.float64)
        partner = [l ^ 1 if (l ^ 1) < len(idx) else l for l in range(len(idx))]
        expect[idx] = np.stack([v.sum(0) + 0 * v, np.cumsum(v, 0), v.max(0) + v[partner], v[0] + 0 * v], 1)
    check(libs, name, [expect], [np.zeros((n, 4, width), dtype)], x, threads=n, group_size=group)


def test_any_number_of_simd_operations_per_statement(libs):
    x = ints(64, 8)
    v = x.reshape(2, 32).astype(np.float64)
    nine = np.repeat(6 * (v.sum(1) + v.max(1) + v.min(1)), 32)
    check(libs, "ops8", [nine - np.repeat(3 * v.min(1), 32)], [np.zeros(64, np.float32)], x, threads=64, group_size=64)
    check(libs, "ops9", [nine], [np.zeros(64, np.float32)], x, threads=64, group_size=64)


# ---- divergence: varying ifs, else branches, returns ----------------------------------------------------------------

@pytest.mark.parametrize("rounds", [0, 1, 5])
def test_simd_functions_in_a_varying_if_else_inside_a_uniform_loop(libs, rounds):
    n, group = 100, 48
    x = ints(n, rounds)
    expect = np.zeros(n)
    for idx in simd_groups(n, group):
        for r in range(rounds):
            v, taken = x[idx].astype(np.float64) + r, (np.arange(len(idx)) + r) % 3 == 0
            expect[idx[taken]] += v[taken].sum()
            if (~taken).any():
                expect[idx[~taken]] -= v[~taken].max() + np.arange((~taken).sum())
    check(libs, "loop_if", [expect], [np.zeros(n, np.float32)], x, np.uint32(rounds), threads=n, group_size=group,
          modes=LANES)


@pytest.mark.parametrize("group, n", [(33, 66), (64, 64), (100, 100)])
def test_nested_varying_ifs_and_else_branches(libs, group, n):
    x = ints(n, group)
    expect = np.zeros((n, 2))
    for idx in simd_groups(n, group):
        lanes, v = np.arange(len(idx)), x[idx].astype(np.float64)
        odd, even = (lanes < 20) & (lanes % 2 == 1), (lanes < 20) & (lanes % 2 == 0)
        pos, rest = (lanes >= 20) & (v > 0), (lanes >= 20) & (v <= 0)
        expect[idx[odd], 0] = v[odd].sum()
        expect[idx[even], 0] = v[even].min() if even.any() else 0
        expect[idx[even], 1] = even.sum()
        expect[idx[lanes < 20], 1] += 100 * np.arange((lanes < 20).sum())
        expect[idx[pos], 0] = -v[pos].sum()
        expect[idx[rest], 0] = v[rest].max() + 1000 if rest.any() else 0
    check(libs, "nested_ifs", [expect], [np.zeros((n, 2), np.float32)], x, threads=n, group_size=group, modes=LANES)


@pytest.mark.parametrize("group, n, live", [(32, 64, 64), (40, 100, 90), (7, 20, 15), (1024, 1024, 1000)])
def test_returned_lanes_do_not_take_part(libs, group, n, live):
    x = ints(n, live)
    expect, bits = np.full((n, 2), 7.0), np.full((n, 2), 7)   # 7: not written
    for idx in simd_groups(n, group):
        lanes = np.arange(len(idx))
        active = (idx < live) & (lanes % 4 != 3)
        expect[idx[(idx < live) & (lanes % 4 == 3)], 0] = -1
        a, v = idx[active], x[idx[active]].astype(np.float64)
        expect[a, 0], expect[a, 1] = v.sum(), np.cumsum(v) - v
        bits[a, 0], bits[a, 1] = len(a), sum(1 << int(l) for l in lanes[active])
        second = (v > 0) & (lanes[active] % 4 != 1)
        expect[a[second], 0] += 1000 * v[second].sum()
        late = a[(v > 0) & (lanes[active] % 4 == 1)]                  # returned before writing
        expect[late], bits[late] = 7, 7
    check(libs, "returns", [expect, bits], [np.full((n, 2), 7, np.float32), np.full((n, 2), 7, np.uint32)], x,
          np.uint32(live), threads=n, group_size=group)


# ---- inlined group functions ----------------------------------------------------------------------------------------

def mirrored(v, n, group):
    return np.concatenate([v[g0:g0 + size][::-1] for g0, size in groups(n, group)])


@pytest.mark.parametrize("group, n", [(1, 2), (33, 70), (256, 256)])
def test_a_helper_with_barriers_called_with_group_and_thread_arguments(libs, group, n):
    x = ints(n, n)
    t = np.concatenate([np.arange(size) for _, size in groups(n, group)])
    a, b = mirrored(x, n, group), np.full(n, 2.0 * x[0])
    expect = np.stack([a, b + 1 + 2 * 2, mirrored(a + b + t, n, group)], 1)
    check(libs, "twice", [expect], [np.zeros((n, 3), np.float32)], x, threads=n, group_size=group)


@pytest.mark.parametrize("group, n", [(32, 64), (50, 50), (7, 10)])
def test_a_helper_that_returns_early_for_some_threads(libs, group, n):
    x = ints(n, group)
    expect = np.zeros(n)
    for idx in simd_groups(n, group):
        g0 = idx[0] // group * group
        size, t = min(group, n - g0), idx - g0
        stay = t % 3 != 0
        expect[idx[~stay]] = -x[idx[~stay]]
        expect[idx[stay]] = x[idx[stay]].sum() + x[g0 + (t[stay] + 1) % size]
        expect[idx] += len(idx)
    check(libs, "early_out", [expect], [np.zeros(n, np.float32)], x, threads=n, group_size=group, modes=LANES)


@pytest.mark.parametrize("group, n", [(1, 1), (31, 62), (33, 33), (100, 150), (1024, 1024)])
def test_template_helpers_deduced_from_pointers_and_lambdas(libs, group, n):
    x = ints(n, group)
    expect = np.zeros((n, 4))
    for g0, size in groups(n, group):
        rows, total = slice(g0, g0 + size), size * (size - 1) / 2
        expect[rows] = np.stack([x[rows] * total, np.full(size, 2 * total), np.full(size, x[rows].max()),
                                 np.full(size, x[rows].sum())], 1)
    check(libs, "deduced", [expect], [np.zeros((n, 4), np.float32)], x, threads=n, group_size=group)


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_kernels_that_change_a_parameter_or_point_into_a_local_run_on_fibers(libs, name):
    x = ints(64, 1)
    v = x.reshape(2, 32)
    expect = {"changes_lane": v[:, np.arange(32) ^ 1], "points_into_local": v + v.sum(1, keepdims=True)}[name]
    check(libs, name, [expect.reshape(-1)], [np.zeros(64, np.float32)], x, threads=64, group_size=32)
    for lib in libs.values():
        assert FALLBACKS[name] in lib.library.kernels[name]["execution_note"]


# ---- c10/metal/reduction_utils.h in Inductor's reduction shape: grid (rows, R), threadgroups (1, R) ------------------

C10_KERNEL = r"""
[[max_total_threads_per_threadgroup(1024)]]
kernel void inductor(device float* sums, device float* maxes, device long* argmaxes, device float3* welford,
                     constant float* x, uint2 pos [[thread_position_in_grid]],
                     uint2 tid [[thread_position_in_threadgroup]], uint2 size [[threads_per_threadgroup]]) {
    FORCE
    threadgroup float tmp_sum[32], tmp_max[32], tmp_arg[32];
    threadgroup long tmp_idx[32];
    threadgroup float3 tmp_welford[1024];
    const long row = pos.x;
    const float v = x[row * size.y + tid.y];
    tmp_welford[tid.y] = float3(v, 0, 1);
    const float s = c10::metal::threadgroup_sum(tmp_sum, v, tid.y, size.y);
    const float m = c10::metal::threadgroup_max(tmp_max, v, tid.y, size.y);
    const long a = c10::metal::threadgroup_argmax(tmp_arg, tmp_idx, v, long(tid.y), tid.y, size.y);
    const float3 w = c10::metal::threadgroup_welford_combine(tmp_welford, size.y);
    if (tid.y == 0) { sums[row] = s; maxes[row] = m; argmaxes[row] = a; welford[row] = w; }
}

// c10's 64-bit SIMD reductions are loops of simd_shuffle_and_fill_down (ten exchanges and a broadcast per call).
[[max_total_threads_per_threadgroup(1024)]]
kernel void inductor_long(device long* out, constant long* x, constant long& cols, uint2 pos [[thread_position_in_grid]],
                          uint2 tid [[thread_position_in_threadgroup]], uint2 size [[threads_per_threadgroup]]) {
    FORCE
    threadgroup long tmp_sum[32], tmp_max[32], tmp_min[32], tmp_prod[32];
    const long row = pos.x;
    long acc = 0, hi = x[row * cols], lo = hi, prod = 1;
    for (long c = tid.y; c < cols; c += size.y) {
        const long v = x[row * cols + c];
        acc += v; hi = ::metal::max(hi, v); lo = ::metal::min(lo, v); prod *= v;
    }
    const long s = c10::metal::threadgroup_sum(tmp_sum, acc, tid.y, size.y);
    const long m = c10::metal::threadgroup_max(tmp_max, hi, tid.y, size.y);
    const long n = c10::metal::threadgroup_min(tmp_min, lo, tid.y, size.y);
    const long p = c10::metal::threadgroup_prod(tmp_prod, prod, tid.y, size.y);
    if (tid.y == 0) { out[4 * row] = s; out[4 * row + 1] = m; out[4 * row + 2] = n; out[4 * row + 3] = p; }
}
"""


@pytest.fixture(scope="module")
def c10_libs():
    spec = importlib.util.find_spec("torch")
    include = Path(list(spec.submodule_search_locations)[0]) / "include" if spec else None
    if include is None or not (include / "c10" / "metal" / "reduction_utils.h").exists():
        pytest.skip("needs torch 2.13 with its c10/metal headers")
    from torch.utils._cpp_embed_headers import _embed_headers   # as torch/_inductor/codegen/mps.py embeds them

    headers = _embed_headers([f"#include <c10/metal/{h}.h>\n" for h in ("utils", "reduction_utils")], [include], set())
    return {mode: mps_shim.compile_shader(headers + force + C10_KERNEL)
            for mode, force in [("lane_loops", LANE_LOOPS), ("fibers", FIBERS)]}


@pytest.mark.parametrize("cols", [1, 31, 32, 33, 1000, 1024])
def test_c10_threadgroup_reductions_in_inductor_shape(c10_libs, cols):
    rows = 3
    x = ints(rows * cols, cols, lo=-40, hi=41).reshape(rows, cols)   # ties: argmax takes the first
    outs = [np.zeros(rows, np.float32), np.zeros(rows, np.float32), np.zeros(rows, np.int64),
            np.zeros((rows, 4), np.float32)]   # float3 has float4's size
    results = check(c10_libs, "inductor", [x.sum(1), x.max(1), x.argmax(1), None], outs, x, threads=(rows, cols),
                    group_size=(1, cols))
    for mode, (*_, welford) in results.items():
        np.testing.assert_allclose(welford[:, :3], np.stack([x.mean(1), x.var(1) * cols, np.full(rows, cols)], 1),
                                   rtol=1e-4, atol=1e-3, err_msg=mode)


@pytest.mark.parametrize("cols, group", [(12, 12), (32, 32), (100, 64), (5000, 1024), (40, 40)])
@pytest.mark.checked_reports(reason="c10's 64-bit reductions shuffle in inactive lanes of partial SIMD-groups: checked mode reports it")
def test_c10_int64_reductions_are_loops_of_shuffles(c10_libs, cols, group):
    rows = 3
    x = np.random.default_rng(cols).integers(-(2 ** 40), 2 ** 40, (rows, cols))
    x[:, ::7] = 1 if cols < 64 else x[:, ::7]
    expect = np.stack([x.sum(1), x.max(1), x.min(1), np.zeros(rows, np.int64)], 1)
    results = check(c10_libs, "inductor_long", [None], [np.zeros((rows, 4), np.int64)], x, cols,
                    threads=(rows, group), group_size=(1, group))
    for mode, (out,) in results.items():
        np.testing.assert_array_equal(out[:, :3], expect[:, :3], err_msg=mode)
    # The product: c10 shuffles with a fill of 0, so in a partial SIMD-group lane 0 multiplies by the value
    # of an inactive lane, which Metal leaves undefined and mps_shim defines as the fill: the product is 0.
    # (Full SIMD-groups of small values are exact; the values here overflow as on the GPU.)
    if group % 32:
        for mode, (out,) in results.items():
            np.testing.assert_array_equal(out[:, 3], 0, err_msg=mode)
    np.testing.assert_array_equal(results["lane_loops"][0], results["fibers"][0])


# ---- kernels that once broke lane loops: divergent SIMD calls, side effects, returns in branches -------------------

BUGS = r"""
kernel void ternary(device float* out, constant float* x, IDS) {
    float y = lane < 16 ? simd_max(x[i]) : simd_min(x[i]); out[i] = y;   // one SIMD operation per arm
}
uint ticket(device atomic_uint* c) { return atomic_fetch_add_explicit(c, 1u, memory_order_relaxed); }
kernel void replayed_call(device float* out, device atomic_uint* c, constant float* x, IDS) {
    float s = simd_sum(x[i] + 0.0f * float(ticket(c))); out[i] = s;
}
kernel void group_constant_call(device float* out, device atomic_uint* c, constant float* x, IDS) {
    const uint mine = ticket(c); threadgroup_barrier(TG); out[i] = float(mine);
}
void publish(threadgroup float* tile, float v, uint t) { tile[t] = v; threadgroup_barrier(TG); }
kernel void argument_call(device float* out, device atomic_uint* c, constant float* x, IDS) {
    threadgroup float tile[64]; publish(tile, float(ticket(c)), t); out[i] = tile[t];
}
float shifted(threadgroup float* tile, float base, uint t) {
    base += float(t); tile[t] = base; threadgroup_barrier(TG); return base;   // base: each thread's own copy
}
kernel void changed_group_argument(device float* out, constant float* x, IDS) {
    threadgroup float tile[64]; float r = shifted(tile, x[0], t); out[i] = r;
}
float pick(threadgroup float* tile, float v, uint t) {
    tile[t] = v;
    threadgroup_barrier(TG);
    if (t % 2 == 0) { const float s = simd_sum(v); return s; }   // must not come back after the if
    return -tile[t ^ 1];
}
kernel void return_in_varying_if(device float* out, constant float* x, IDS) {
    threadgroup float tile[64]; float r = pick(tile, x[i], t); out[i] = r;
}
"""


BUG_REASONS = {  # what went wrong; the execution each kernel must report now
    "ternary": ("?: arms with different SIMD functions shared one operation: simd_min returned the max",
                "lane_loops"),
    "replayed_call": ("a called function's side effects ran once per replay pass (counter 128, not 64): a SIMD "
                      "statement calling a function that writes memory now runs on fibers", "fibers"),
    "group_constant_call": ("`const T v = f(...)` with a side-effecting call was evaluated once per group",
                            "lane_loops"),
    "argument_call": ("an argument calling a side-effecting function was bound once for the group", "lane_loops"),
    "changed_group_argument": ("a parameter bound once for the group was shared when the helper changed it",
                               "lane_loops"),
    "return_in_varying_if": ("`return v;` in a varying if with a SIMD call: the if's LaneMask brought the thread back",
                             "lane_loops"),
}


@pytest.fixture(scope="module")
def bugs():
    src = BUGS.replace("IDS) {", "IDS) { FORCE")
    return {mode: mps_shim.compile_shader(HEAD + force + src) for mode, force in [("lane_loops", LANE_LOOPS),
                                                                                  ("fibers", FIBERS)]}


def check_bug_kernel(lib, name):
    x = np.arange(64, dtype=np.float32)
    out, counter = np.zeros(64, np.float32), np.zeros(1, np.uint32)
    calls = name.endswith("_call")
    getattr(lib, name)(*((out, counter, x) if calls else (out, x)), threads=64, group_size=32)
    sg, lane = x.reshape(2, 32), np.arange(64) % 32
    expect = {
        "ternary": np.where(lane < 16, np.repeat(sg[:, 15], 32), np.repeat(sg[:, 16], 32)),
        "replayed_call": np.repeat(sg.sum(1), 32),
        "group_constant_call": np.arange(64),   # sorted: one ticket per thread
        "argument_call": np.arange(64),
        "changed_group_argument": x[0] + lane,
        "return_in_varying_if": np.where(lane % 2 == 0, np.repeat(sg[:, ::2].sum(1), 32), -(x.astype(int) ^ 1)),
    }[name]
    if calls:
        assert counter[0] == 64
    np.testing.assert_array_equal(np.sort(out) if calls and name != "replayed_call" else out, expect)


@pytest.mark.parametrize("name", sorted(set(BUG_REASONS) - {"ternary"}))   # fibers: see the module docstring
def test_the_bug_kernels_are_right_on_fibers(bugs, name):
    check_bug_kernel(bugs["fibers"], name)
    assert_execution(bugs["fibers"], name, "fibers")


ENGINE_SPECIFIC_BUGS = {
    "group_constant_call": "each thread's ticket comes from an atomic counter: the engines order threads apart",
    "argument_call": "each thread's ticket comes from an atomic counter: the engines order threads apart",
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.engine_specific(reason=ENGINE_SPECIFIC_BUGS[n]))
                                  if n in ENGINE_SPECIFIC_BUGS else n for n in sorted(BUG_REASONS)])
def test_former_engine_bugs_without_forcing(bugs, name):
    check_bug_kernel(bugs["lane_loops"], name)
    assert_execution(bugs["lane_loops"], name, BUG_REASONS[name][1])


def test_a_lambda_in_the_kernel_that_calls_a_simd_function():  # once needed LaneValues<lambda>
    lib = mps_shim.compile_shader(HEAD + r"""
kernel void k(device float* out, constant float* x, IDS) {
    auto total = [](float v) { return simd_sum(v); }; float y = total(x[i]); out[i] = y;
}""")
    x, out = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
    lib.k(out, x, threads=64, group_size=64)
    np.testing.assert_array_equal(out, np.repeat(x.reshape(2, 32).sum(1), 32))
    assert lib.library.kernels["k"]["execution"] == "lane_loops"


@pytest.mark.parametrize("name", ["loop_if", "nested_ifs", "early_out", "ternary"])
def test_divergent_simd_kernels_agree_on_both_engines(libs, bugs, monkeypatch, name):
    """SIMD calls on divergent paths: fibers match operations by call site and reconverge after branches,
    so the engine cross-check finds the bytes lane loops give (once fibers paired calls by arrival order)."""
    monkeypatch.setenv("MPS_SHIM_CROSSCHECK", "1")   # also under pytest --crosscheck=off
    x = ints(64, 5)
    lib = bugs["lane_loops"] if name == "ternary" else libs["lane_loops"]
    assert lib.library.kernels[name]["execution"] == "lane_loops"
    out = np.zeros((64, 2) if name == "nested_ifs" else 64, np.float32)
    getattr(lib, name)(out, x, *([np.uint32(5)] if name == "loop_if" else []), threads=64, group_size=64)
