"""Group-uniform statements in lane loops (csrc/backends/host/lane_loops/uniform.cpp):
statements between barriers whose every read is the same for all threads of
the group run once for the group, and their variables become group-level.

Each kernel runs on lane loops and on fibers (MPS_SHIM_LANE_LOOPS=0); results
must match numpy and be bit-identical between the two. The translated C++ is
captured (a $CXX wrapper copies library.cpp) to check which variables became
group-level (`TYPE name{};`, written only by emit_uniform) and which stayed per
thread, so a kernel that computes the same answer either way still fails when
the analysis decides wrongly.
"""
import os
import re
from pathlib import Path

import numpy as np
import pytest

import mps_shim

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n#define TG mem_flags::mem_threadgroup\n"

SOURCE = HEAD + r"""
#define IDS uint t [[thread_position_in_threadgroup]], uint i [[thread_position_in_grid]], \
            uint n [[threads_per_threadgroup]]

// Positive: a loop over threadgroup memory; the region also stores to device memory.
kernel void tile_mean(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = 0.0f;
    for (uint k = 0; k < n; ++k) s += tile[k];
    float mean = s / float(n);
    out[i] = x[i] - mean;
}

// Positive: a helper whose result every thread computes the same way.
float serial_max(threadgroup float* d, uint count) {
    threadgroup_barrier(TG);
    float m = d[0];
    for (uint k = 1; k < count; ++k) m = max(m, d[k]);
    threadgroup_barrier(TG);
    return m;
}

kernel void helper_max(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    float m = serial_max(tile, n);
    out[i] = x[i] - m;
}

// Negative: reads the thread's position.
kernel void reads_position(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = 0.0f;
    for (uint k = 0; k < n; ++k) s += tile[k] * float(t);
    out[i] = s;
}

// Negative: reads a per-thread variable.
kernel void reads_thread_value(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    float w = x[i] * 2.0f;
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = w;
    for (uint k = 0; k < n; ++k) s += tile[k];
    out[i] = s;
}

// Negative: a SIMD function's value differs between SIMD-groups.
kernel void reads_simd_value(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    float v = simd_sum(x[i]);
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = v + tile[0];
    out[i] = s;
}

// Negative: the stretch writes threadgroup memory (every thread adds 1 to every cell).
kernel void writes_group_memory(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = 0.0f;
    threadgroup_barrier(TG);
    for (uint k = 0; k < n; ++k) tile[k] += 1.0f;
    threadgroup_barrier(TG);
    out[i] = tile[t] + x[i];
}

// Negative: the region writes the threadgroup memory the stretch reads, so on
// lane loops a thread sees the writes of the threads before it (a race in Metal).
kernel void reads_what_region_writes(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    tile[t] = tile[t] + 1.0f;
    float s = tile[n - 1];
    out[i] = s;
}

// Negative: the loop bound is per thread (a prefix sum).
kernel void per_thread_bound(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = 0.0f;
    for (uint k = 0; k <= t; ++k) s += tile[k];
    out[i] = s;
}

// Negative: a uniform start, changed per thread after the next barrier.
kernel void changed_later(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = tile[0];
    threadgroup_barrier(TG);
    s += float(t);
    out[i] = s;
}

// Negative: a reference to the uniform value is written per thread.
kernel void written_through_reference(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    float s = tile[0];
    threadgroup_barrier(TG);
    thread float& r = s;
    r += float(t);
    out[i] = s;
}

// Some threads return a value of their own before the helper's uniform stretch.
float early_or_max(threadgroup float* d, uint idx, uint count) {
    if (idx % 3 == 1) return d[idx] * 10.0f;
    threadgroup_barrier(TG);
    float m = d[0];
    for (uint k = 1; k < count; ++k) m = max(m, d[k]);
    threadgroup_barrier(TG);
    return m;
}

kernel void early_return_helper(device float* out, constant float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    float m = early_or_max(tile, t, n);
    out[i] = m;
}

// Threads past `live` return before the stretch: the others still get its value.
kernel void returned_threads(device float* out, constant float* x, constant uint& live, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    if (t >= live) return;
    threadgroup_barrier(TG);
    float s = 0.0f;
    for (uint k = 0; k < n; ++k) s += tile[k];
    out[i] = s;
}
"""

# Where no thread runs, nothing runs: group 1 returns entirely, and the
# stretch divides by (g - 1), which traps (SIGFPE) if it ever runs for group 1.
NOBODY = HEAD + r"""
kernel void nobody_runs(device uint* out, constant uint* x, uint t [[thread_position_in_threadgroup]],
                        uint i [[thread_position_in_grid]], uint g [[threadgroup_position_in_grid]]) {
    threadgroup uint tile[64];
    tile[t] = x[i];
    if (g == 1) return;
    threadgroup_barrier(TG);
    uint q = tile[0] / (g - 1u);
    out[i] = q;
}
"""

# Inductor's LayerNorm (a GPT-2 block's, smaller rows) and reductions from
# c10/metal/reduction_utils.h, in Inductor's {1, R} group shape.
INDUCTOR = r"""
kernel void layer_norm(device float* out_ptr2, constant float* in_ptr0, constant float* in_ptr1,
                       constant float* in_ptr2, uint2 thread_pos [[thread_position_in_grid]],
                       uint2 group_pos [[thread_position_in_threadgroup]]) {
    auto xindex = thread_pos.x;
    auto r0_index = thread_pos.y;
    int r0_1 = r0_index;
    int x0 = xindex;
    threadgroup float tmp_acc_0[768];
    auto tmp0 = in_ptr0[r0_1 + 768*x0];
    tmp_acc_0[r0_index * 1] = tmp0;
    auto tmp1 = c10::metal::threadgroup_welford_reduce(tmp_acc_0, 768);
    auto tmp9 = in_ptr1[r0_1];
    auto tmp11 = in_ptr2[r0_1];
    auto tmp2 = tmp0 - tmp1.x;
    auto tmp3 = 768.0;
    auto tmp4 = tmp1.y / tmp3;
    auto tmp5 = 1e-05;
    auto tmp6 = tmp4 + tmp5;
    auto tmp7 = metal::precise::rsqrt(tmp6);
    auto tmp8 = tmp2 * tmp7;
    auto tmp10 = tmp8 * tmp9;
    auto tmp12 = tmp10 + tmp11;
    out_ptr2[r0_1 + 768*x0] = static_cast<float>(tmp12);
}

// Welford partials per thread (mean, m2, weight), combined by c10.
kernel void welford_combine_rows(device float* out, constant float* in_ptr0,
                                 uint2 thread_pos [[thread_position_in_grid]]) {
    auto x0 = thread_pos.x;
    auto r0 = thread_pos.y;
    threadgroup float3 tmp_acc[64];
    tmp_acc[r0] = float3(in_ptr0[x0 * 64 + r0], 0.0f, 1.0f);
    auto rc = c10::metal::threadgroup_welford_combine(tmp_acc, 64);
    out[(x0 * 64 + r0) * 2 + 0] = rc.x;
    out[(x0 * 64 + r0) * 2 + 1] = rc.y / rc.z;
}

kernel void sum_and_max(device float* out, constant float* in_ptr0, uint2 thread_pos [[thread_position_in_grid]]) {
    auto x0 = thread_pos.x;
    auto r0 = thread_pos.y;
    threadgroup float acc_s[32];
    threadgroup float acc_m[32];
    auto v = in_ptr0[x0 * 256 + r0];
    auto s = c10::metal::threadgroup_sum(acc_s, v, r0, 256);
    auto m = c10::metal::threadgroup_max(acc_m, v, r0, 256);
    out[(x0 * 256 + r0) * 2 + 0] = s;
    out[(x0 * 256 + r0) * 2 + 1] = m;
}
"""

GROUP = 64


def c10_header():
    torch = pytest.importorskip("torch")
    from torch.utils._cpp_embed_headers import _embed_headers

    include = Path(torch.__file__).parent / "include"
    if not (include / "c10" / "metal" / "reduction_utils.h").exists():
        pytest.skip("this torch build ships no c10/metal headers")
    return _embed_headers(["#include <c10/metal/reduction_utils.h>\n"], [include], set())


def compile_both(source):
    lanes = mps_shim.compile_shader(source)
    os.environ["MPS_SHIM_LANE_LOOPS"] = "0"
    try:
        fibers = mps_shim.compile_shader(source)
    finally:
        del os.environ["MPS_SHIM_LANE_LOOPS"]
    return {"lane_loops": lanes, "fibers": fibers}


def translated(run_python, source, tmp):
    """The C++ the host backend writes for `source` (lane loops on), kept through MPS_SHIM_KEEP_CXX."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "source.metal").write_text(source)
    code = f"import mps_shim; mps_shim.ShaderLibrary(open({str(tmp / 'source.metal')!r}).read())"
    proc = run_python(code, env={"MPS_SHIM_KEEP_CXX": str(tmp / "library.cpp"), "MPS_SHIM_CACHE_DIR": str(tmp / "cache"),
                                 "MPS_SHIM_LANE_LOOPS": None}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp / "library.cpp.fibers").exists(), "the lane-loop translation did not compile"
    return (tmp / "library.cpp").read_text()


def function_text(cpp, name):
    """A kernel's group function (`name__mps_lanes(`) or a helper's lane version (`name__mps_lanes_ID(`)."""
    m = re.search(r"\b" + re.escape(name) + r"__mps_lanes(_\w+)?\(", cpp)
    assert m, f"no lane-loop function for {name}"
    end = cpp.find("\nMPS_SHIM_", m.end())
    return cpp[m.start():end if end >= 0 else len(cpp)]


def group_level(fn, var):
    """The variable is one group-level value (emit_uniform's `TYPE name{};`)."""
    return re.search(r"\b" + re.escape(var) + r"\{\};", fn) is not None


@pytest.fixture(scope="module")
def libs():
    return compile_both(SOURCE)


@pytest.fixture(scope="module")
def cpp(run_python, tmp_path_factory):
    return translated(run_python, SOURCE, tmp_path_factory.mktemp("uniform_cpp"))


# Races in Metal (threads read a cell others write with no barrier between):
# the engines order threads differently, so lane loops are checked alone, with
# the result they gave before uniform statements existed.
RACY = {"reads_what_region_writes"}


def run_both(libs, name, x, *extra, threads=2 * GROUP, group_size=GROUP, dtype=np.float32):
    outs = {}
    for mode, lib in libs.items():
        if name in RACY and mode == "fibers":
            continue
        assert lib.library.kernels[name]["execution"] == mode, lib.library.kernels[name]["execution_note"]
        out = np.full(threads, -7, dtype)
        getattr(lib, name)(out, x, *extra, threads=threads, group_size=group_size)
        outs[mode] = out
    if "fibers" in outs:
        assert np.array_equal(outs["lane_loops"].view(np.uint32), outs["fibers"].view(np.uint32))
    return outs["lane_loops"]


def small_ints(n, seed):
    return np.random.default_rng(seed).integers(-8, 9, n).astype(np.float32)


def rows(x):
    return x.reshape(-1, GROUP)


def test_a_loop_over_threadgroup_memory_runs_once(libs, cpp):
    x = small_ints(2 * GROUP, 1)
    got = run_both(libs, "tile_mean", x)
    np.testing.assert_array_equal(got, (rows(x) - rows(x).sum(1, keepdims=True) / GROUP).ravel())
    fn = function_text(cpp, "tile_mean")
    assert group_level(fn, "s") and group_level(fn, "mean") and "any_running" in fn


def test_a_helper_returning_a_uniform_value(libs, cpp):
    x = small_ints(2 * GROUP, 2)
    got = run_both(libs, "helper_max", x)
    np.testing.assert_array_equal(got, (rows(x) - rows(x).max(1, keepdims=True)).ravel())
    assert group_level(function_text(cpp, "serial_max"), "m")


@pytest.mark.parametrize("name, var, expect", [
    ("reads_position", "s", lambda x: rows(x).sum(1, keepdims=True) * np.arange(GROUP)),
    ("reads_thread_value", "s", lambda x: 2 * rows(x) + rows(x).sum(1, keepdims=True)),
    ("reads_simd_value", "s", lambda x: rows(x).reshape(-1, 2, 32).sum(2, keepdims=True).repeat(32, 2)
                                        .reshape(-1, GROUP) + rows(x)[:, :1]),
    ("writes_group_memory", None, lambda x: rows(x) + GROUP),
    pytest.param("reads_what_region_writes", "s",
                 lambda x: np.where(np.arange(GROUP) == GROUP - 1, 1.0, 0.0) + rows(x)[:, -1:],
                 marks=[pytest.mark.engine_specific(reason="a race (see RACY): the engines order threads apart"),
                        pytest.mark.checked_reports(reason="a race on purpose: racecheck reports it")]),
    ("per_thread_bound", "s", lambda x: np.cumsum(rows(x), 1)),
    ("changed_later", "s", lambda x: rows(x)[:, :1] + np.arange(GROUP)),
    ("written_through_reference", "s", lambda x: rows(x)[:, :1] + np.arange(GROUP)),
])
def test_stretches_that_differ_between_threads_stay_per_thread(libs, cpp, name, var, expect):
    x = small_ints(2 * GROUP, 3)
    got = run_both(libs, name, x)
    np.testing.assert_array_equal(got, expect(x).astype(np.float32).ravel())
    fn = function_text(cpp, name)
    if var:
        assert not group_level(fn, var)
    else:
        assert "any_running" not in fn


def test_threads_that_returned_early_from_a_helper_keep_their_value(libs, cpp):
    x = small_ints(2 * GROUP, 4)
    got = rows(run_both(libs, "early_return_helper", x))
    t = np.arange(GROUP)
    expect = np.where(t % 3 == 1, rows(x) * 10, rows(x).max(1, keepdims=True))
    np.testing.assert_array_equal(got, expect)
    assert group_level(function_text(cpp, "early_or_max"), "m")


@pytest.mark.parametrize("live", [1, 17, GROUP])
def test_threads_that_returned_do_not_hide_the_value_from_the_others(libs, live):
    x = small_ints(2 * GROUP, 5)
    got = rows(run_both(libs, "returned_threads", x, np.uint32(live)))
    t = np.arange(GROUP)
    expect = np.where(t < live, rows(x).sum(1, keepdims=True), -7.0)
    np.testing.assert_array_equal(got, expect)


def test_nothing_runs_for_a_group_whose_threads_all_returned(run_python, tmp_path):
    # The kernel traps (integer division by zero) if the stretch ran for group 1.
    cpp = translated(run_python, NOBODY, tmp_path / "cpp")
    assert group_level(function_text(cpp, "nobody_runs"), "q")
    code = f"""
import numpy as np, mps_shim
lib = mps_shim.compile_shader({NOBODY!r})
x = np.arange(192, dtype=np.uint32) + 100
out = np.zeros(192, np.uint32)
lib.nobody_runs(out, x, threads=192, group_size=64)
print(out[::64].tolist())
"""
    proc = run_python(code, env={"MPS_SHIM_LANE_LOOPS": None})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([100 // 0xFFFFFFFF, 0, 228 // 1])


@pytest.fixture(scope="module")
def inductor():
    source = c10_header() + INDUCTOR
    return source, compile_both(source)


def test_inductor_layer_norm_with_c10_welford(inductor, run_python, tmp_path):
    source, libs = inductor
    rng = np.random.default_rng(6)
    x = rng.standard_normal(4 * 768).astype(np.float32)
    w = rng.standard_normal(768).astype(np.float32)
    b = rng.standard_normal(768).astype(np.float32)
    outs = {}
    for mode, lib in libs.items():
        assert lib.library.kernels["layer_norm"]["execution"] == mode
        out = np.zeros(4 * 768, np.float32)
        lib.layer_norm(out, x, w, b, threads=(4, 768), group_size=(1, 768))
        outs[mode] = out
    assert np.array_equal(outs["lane_loops"].view(np.uint32), outs["fibers"].view(np.uint32))
    xr = x.reshape(4, 768).astype(np.float64)
    ref = (xr - xr.mean(1, keepdims=True)) / np.sqrt(xr.var(1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(outs["lane_loops"].reshape(4, 768), ref, rtol=1e-4, atol=1e-4)
    cpp = translated(run_python, source, tmp_path / "cpp")
    welford = function_text(cpp, "threadgroup_welford_reduce")
    assert group_level(welford, "m") and group_level(welford, "m2")
    assert group_level(function_text(cpp, "threadgroup_welford_combine"), "rc")
    kernel = function_text(cpp, "layer_norm")
    assert group_level(kernel, "tmp3") and group_level(kernel, "tmp5") and not group_level(kernel, "tmp2")


def test_inductor_welford_combine_sum_and_max(inductor):
    _, libs = inductor
    rng = np.random.default_rng(7)
    x = rng.integers(-8, 9, 4 * 64).astype(np.float32)
    outs = {}
    for mode, lib in libs.items():
        out = np.zeros(4 * 64 * 2, np.float32)
        lib.welford_combine_rows(out, x, threads=(4, 64), group_size=(1, 64))
        outs[mode] = out
    assert np.array_equal(outs["lane_loops"].view(np.uint32), outs["fibers"].view(np.uint32))
    got = outs["lane_loops"].reshape(4, 64, 2)
    xr = x.reshape(4, 64).astype(np.float64)
    np.testing.assert_allclose(got[..., 0], np.repeat(xr.mean(1, keepdims=True), 64, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[..., 1], np.repeat(xr.var(1, keepdims=True), 64, 1), rtol=1e-5, atol=1e-5)

    x = rng.integers(-8, 9, 4 * 256).astype(np.float32)
    outs = {}
    for mode, lib in libs.items():
        out = np.zeros(4 * 256 * 2, np.float32)
        lib.sum_and_max(out, x, threads=(4, 256), group_size=(1, 256))
        outs[mode] = out
    assert np.array_equal(outs["lane_loops"].view(np.uint32), outs["fibers"].view(np.uint32))
    got = outs["lane_loops"].reshape(4, 256, 2)
    xr = x.reshape(4, 256)
    np.testing.assert_array_equal(got[..., 0], np.repeat(xr.sum(1, keepdims=True), 256, 1))
    np.testing.assert_array_equal(got[..., 1], np.repeat(xr.max(1, keepdims=True), 256, 1))
