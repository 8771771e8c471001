"""dispatchThreads semantics through the Python API.

Expectations are computed with numpy from Metal's rules for non-uniform
threadgroups (DESIGN.md §2, §3): the grid is exact, the last threadgroup in each
dimension may be partial, `threads_per_threadgroup` is the actual size of the
thread's group, `dispatch_threads_per_threadgroup` the requested one, and
`thread_index_in_threadgroup` linearises the position in the group x-fastest.
"""
import os
import textwrap

import numpy as np
import pytest

import mps_shim
from mps_shim import DispatchError, ShaderLibrary

SENTINEL = 0xDEADBEEF
GUARD = 4096  # elements after the real output that no thread may touch

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

#define STORE1(o, k, v) o[k] = v;
#define STORE2(o, k, v) o[k] = v.x; o[k + 1] = v.y;
#define STORE3(o, k, v) o[k] = v.x; o[k + 1] = v.y; o[k + 2] = v.z;

kernel void ids1(device uint* out [[buffer(0)]],
                 uint pos [[thread_position_in_grid]],
                 uint tpt [[thread_position_in_threadgroup]],
                 uint tg [[threadgroup_position_in_grid]],
                 uint tpg [[threads_per_grid]],
                 uint tptg [[threads_per_threadgroup]],
                 uint tgpg [[threadgroups_per_grid]],
                 uint idx [[thread_index_in_threadgroup]],
                 uint dtpt [[dispatch_threads_per_threadgroup]]) {
    device uint* o = out + pos * 8;
    STORE1(o, 0, pos) STORE1(o, 1, tpt) STORE1(o, 2, tg) STORE1(o, 3, tpg)
    STORE1(o, 4, tptg) STORE1(o, 5, tgpg) STORE1(o, 6, idx) STORE1(o, 7, dtpt)
}

kernel void ids2(device uint* out [[buffer(0)]],
                 uint2 pos [[thread_position_in_grid]],
                 uint2 tpt [[thread_position_in_threadgroup]],
                 uint2 tg [[threadgroup_position_in_grid]],
                 uint2 tpg [[threads_per_grid]],
                 uint2 tptg [[threads_per_threadgroup]],
                 uint2 tgpg [[threadgroups_per_grid]],
                 uint idx [[thread_index_in_threadgroup]],
                 uint2 dtpt [[dispatch_threads_per_threadgroup]]) {
    device uint* o = out + (pos.y * tpg.x + pos.x) * 15;
    STORE2(o, 0, pos) STORE2(o, 2, tpt) STORE2(o, 4, tg) STORE2(o, 6, tpg)
    STORE2(o, 8, tptg) STORE2(o, 10, tgpg) STORE1(o, 12, idx) STORE2(o, 13, dtpt)
}

#define IDS3_BODY                                                                  \
    device uint* o = out + ((pos.z * tpg.y + pos.y) * tpg.x + pos.x) * 22;         \
    STORE3(o, 0, pos) STORE3(o, 3, tpt) STORE3(o, 6, tg) STORE3(o, 9, tpg)         \
    STORE3(o, 12, tptg) STORE3(o, 15, tgpg) STORE1(o, 18, idx) STORE3(o, 19, dtpt)

kernel void ids3(device uint* out [[buffer(0)]],
                 uint3 pos [[thread_position_in_grid]],
                 uint3 tpt [[thread_position_in_threadgroup]],
                 uint3 tg [[threadgroup_position_in_grid]],
                 uint3 tpg [[threads_per_grid]],
                 uint3 tptg [[threads_per_threadgroup]],
                 uint3 tgpg [[threadgroups_per_grid]],
                 uint idx [[thread_index_in_threadgroup]],
                 uint3 dtpt [[dispatch_threads_per_threadgroup]]) {
    IDS3_BODY
}

[[max_total_threads_per_threadgroup(64)]]
kernel void ids3_max64(device uint* out [[buffer(0)]],
                       uint3 pos [[thread_position_in_grid]],
                       uint3 tpt [[thread_position_in_threadgroup]],
                       uint3 tg [[threadgroup_position_in_grid]],
                       uint3 tpg [[threads_per_grid]],
                       uint3 tptg [[threads_per_threadgroup]],
                       uint3 tgpg [[threadgroups_per_grid]],
                       uint idx [[thread_index_in_threadgroup]],
                       uint3 dtpt [[dispatch_threads_per_threadgroup]]) {
    IDS3_BODY
}

kernel void axpb(device float* out, constant float* a, constant long& n, uint i [[thread_position_in_grid]]) {
    if ((long)i < n) {
        out[i] = a[i] * 2.0f + float(i % 7u);
    }
}

kernel void grid2(device uint* out, uint2 pos [[thread_position_in_grid]], uint2 size [[threads_per_grid]]) {
    out[pos.y * size.x + pos.x] = pos.x * 3u + pos.y * 5u + 1u;
}
"""

# Each ids kernel records every thread-position attribute: FIELDS[dims] values per thread.
FIELDS = {1: 8, 2: 15, 3: 22}
NAMES = ["pos", "tpt", "tg", "tpg", "tptg", "tgpg", "idx", "dtpt"]


@pytest.fixture(scope="module")
def lib():
    return ShaderLibrary(SOURCE)


def expected_ids(grid, group):
    """numpy model of dispatchThreads: per-thread attribute values, threads in x-fastest order."""
    g = np.array(list(grid) + [1] * (3 - len(grid)), dtype=np.int64)
    t = np.array(list(group) + [1] * (3 - len(group)), dtype=np.int64)
    z, y, x = np.meshgrid(np.arange(g[2]), np.arange(g[1]), np.arange(g[0]), indexing="ij")
    pos = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    tg = pos // t
    tpt = pos % t
    tptg = np.minimum(t, g - tg * t)  # the edge group is partial
    tgpg = np.broadcast_to(-(-g // t), pos.shape)
    idx = tpt[:, 0] + tpt[:, 1] * tptg[:, 0] + tpt[:, 2] * tptg[:, 0] * tptg[:, 1]
    return {
        "pos": pos, "tpt": tpt, "tg": tg, "tpg": np.broadcast_to(g, pos.shape), "tptg": tptg,
        "tgpg": tgpg, "idx": idx[:, None], "dtpt": np.broadcast_to(t, pos.shape),
    }


def run_ids(lib, kernel, dims, length, group_size=None):
    """Dispatches an ids kernel; returns {attribute: array (threads, components)}."""
    grid = [length] if isinstance(length, int) else list(length)
    n = int(np.prod(grid))
    fields = FIELDS[dims]
    out = np.full(n * fields + GUARD, SENTINEL, dtype=np.uint32)
    fn = lib.get_kernel_function(kernel)

    def encode(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.dispatch(length, group_size)

    fn.run_command_block(encode)
    assert np.all(out[n * fields:] == SENTINEL), "a thread outside the grid wrote past the output"
    rows = out[:n * fields].reshape(n, fields).astype(np.int64)
    assert not np.any(rows == SENTINEL), "some thread of the grid did not run"
    widths = {"idx": 1}
    got, k = {}, 0
    for name in NAMES:
        w = widths.get(name, dims)
        got[name] = rows[:, k:k + w]
        k += w
    return got


def check(got, expect, dims):
    for name in NAMES:
        want = expect[name] if name == "idx" else expect[name][:, :dims]
        np.testing.assert_array_equal(got[name], want, err_msg=f"attribute {name}")


@pytest.mark.parametrize("length, group", [
    (1000, 96), (7, 3), (1, 1), (1025, 1024), (1024, 1024), (333, 1), (64, 100),
])
def test_1d_partial_edge_group(lib, length, group):
    check(run_ids(lib, "ids1", 1, length, group), expected_ids([length], [group]), 1)


@pytest.mark.parametrize("length, group", [(1000, 96), (37, 8), (5, 5)])
def test_1d_sequence_form_matches_int_form(lib, length, group):
    expect = expected_ids([length], [group])
    check(run_ids(lib, "ids1", 1, [length], [group]), expect, 1)
    check(run_ids(lib, "ids1", 1, (length,), (group,)), expect, 1)


@pytest.mark.parametrize("grid, group", [
    ([53, 37], [8, 8]), ([53, 37], [16, 4]), ([1, 17], [1, 5]), ([33, 2], [32, 32]), ([7, 9], [7, 9]),
    ((20, 3), (3, 20)),
])
def test_2d_partial_edge_groups(lib, grid, group):
    check(run_ids(lib, "ids2", 2, grid, group), expected_ids(grid, group), 2)


@pytest.mark.parametrize("grid, group", [
    ([5, 3, 2], [2, 2, 2]), ([9, 7, 5], [4, 3, 2]), ([33, 2, 3], [32, 1, 2]), ([1, 1, 11], [1, 1, 4]),
    ([17, 13, 3], [8, 8, 16]),
])
def test_3d_partial_edge_groups(lib, grid, group):
    check(run_ids(lib, "ids3", 3, grid, group), expected_ids(grid, group), 3)


def test_thread_index_is_dense_in_every_group(lib):
    got = run_ids(lib, "ids3", 3, [9, 7, 5], [4, 3, 2])
    groups = {}
    for tg, idx, size in zip(map(tuple, got["tg"]), got["idx"][:, 0], got["tptg"]):
        groups.setdefault(tg, []).append(idx)
        assert idx < np.prod(size)
    for tg, indices in groups.items():
        assert sorted(indices) == list(range(len(indices))), tg


# ---- default threadgroup sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 100, 1024, 1025, 5000])
def test_single_default_group_is_min_of_length_and_max_threads(lib, length):
    assert lib.get_kernel_function("ids1").max_threads == 1024
    got = run_ids(lib, "ids1", 1, length)
    check(got, expected_ids([length], [min(length, 1024)]), 1)


@pytest.mark.parametrize("grid", [[30, 5], [2000, 2], [3, 4, 5]])
def test_array_default_group_is_max_threads_by_1_by_1(lib, grid):
    dims = len(grid)
    kernel = {2: "ids2", 3: "ids3"}[dims]
    check(run_ids(lib, kernel, dims, grid), expected_ids(grid, [1024, 1, 1][:dims]), dims)


def test_max_total_threads_attribute_sets_default_and_limit(lib):
    fn = lib.get_kernel_function("ids3_max64")
    assert fn.max_threads == 64
    assert lib.kernels["ids3_max64"]["max_threads"] == 64
    # single: min(length, 64); array: (64, 1, 1)
    check(run_ids(lib, "ids3_max64", 3, 100), expected_ids([100], [64]), 3)
    check(run_ids(lib, "ids3_max64", 3, 50), expected_ids([50], [50]), 3)
    check(run_ids(lib, "ids3_max64", 3, [100, 3]), expected_ids([100, 3], [64, 1]), 3)
    # exactly at the limit is allowed
    check(run_ids(lib, "ids3_max64", 3, [9, 9], [8, 8]), expected_ids([9, 9], [8, 8]), 3)
    check(run_ids(lib, "ids3_max64", 3, [5, 5, 5], [4, 4, 4]), expected_ids([5, 5, 5], [4, 4, 4]), 3)


# ---- errors -----------------------------------------------------------------------------------------------------

def dispatch_error(lib, kernel, length, group_size=None):
    out = np.zeros(1 << 16, np.uint32)
    fn = lib.get_kernel_function(kernel)

    def encode(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.dispatch(length, group_size)

    with pytest.raises(DispatchError) as info:
        fn.run_command_block(encode)
    assert not out.any(), "a rejected dispatch must not run"
    return str(info.value)


def test_product_of_group_dims_over_limit(lib):
    msg = dispatch_error(lib, "ids3", [64, 64], [32, 64])
    assert "Threadgroup size exceeds 1024 limit" in msg
    msg = dispatch_error(lib, "ids3_max64", [9, 9], [8, 9])
    assert "Threadgroup size exceeds 64 limit" in msg
    msg = dispatch_error(lib, "ids3_max64", [4, 4, 8], [4, 4, 8])
    assert "Threadgroup size exceeds 64 limit" in msg


# DESIGN.md §2: never clamp silently; a group of more than maxThreads threads is
# rejected with "Threadgroup size exceeds N limit", whatever the number of dimensions.
def test_single_group_over_limit(lib):
    msg = dispatch_error(lib, "ids1", 4096, 1025)
    assert "Threadgroup size exceeds 1024 limit" in msg, msg


def test_array_group_dim_over_limit(lib):
    msg = dispatch_error(lib, "ids3_max64", [200], [65])
    assert "Threadgroup size exceeds 64 limit" in msg, msg


@pytest.mark.parametrize("length", [[], [2, 2, 2, 2]])
def test_dimension_count_must_be_1_to_3(lib, length):
    msg = dispatch_error(lib, "ids3", length)
    assert "1 to 3 dimensions" in msg and f"got {len(length)}" in msg


def test_group_dims_must_match_grid_dims(lib):
    msg = dispatch_error(lib, "ids3", [8, 8], [8])
    assert "2 dimensions" in msg and "threadgroup size has 1" in msg
    msg = dispatch_error(lib, "ids3", [8], [8, 1])
    assert "1 dimensions" in msg and "threadgroup size has 2" in msg
    with pytest.raises(DispatchError):  # int group with a 2-d grid is a 1-d group
        run_ids(lib, "ids3", 3, [8, 8], 8)


@pytest.mark.parametrize("length, group", [(10, 0), ([10, 10], [0, 4]), ([4, 4, 4], [2, 2, 0])])
def test_zero_group_size_is_an_error(lib, length, group):
    msg = dispatch_error(lib, "ids3", length, group)
    assert "threadgroup size 0" in msg


def test_negative_or_non_int_sizes_rejected_in_python(lib):
    fn = lib.get_kernel_function("ids1")
    out = np.zeros(16, np.uint32)
    for length, group, exc in [(-1, None, ValueError), ([4, -2], None, ValueError), (4.0, None, TypeError),
                               ([4, True], None, TypeError), (4, "2", TypeError)]:
        def encode(f):
            f.start_encoding()
            f.set_arg_tensor(0, out)
            f.dispatch(length, group)

        with pytest.raises(exc):
            fn.run_command_block(encode)
    assert not out.any()


# ---- zero-thread and large dispatches ---------------------------------------------------------------------------

@pytest.mark.parametrize("length, group", [
    (0, None), (0, 32), ([0], None), ([0, 5], None), ([5, 0], [4, 4]), ([3, 3, 0], [1, 1, 1]),
])
def test_zero_thread_dispatch_is_a_noop(lib, length, group):
    out = np.full(64, 7, np.uint32)
    fn = lib.get_kernel_function("ids3")

    def encode(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.dispatch(length, group)

    fn.run_command_block(encode)
    assert np.all(out == 7)


def test_large_1d_grid(lib):
    n = 3_000_017
    a = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    out = np.full(n + 8, -1.0, np.float32)
    fn = lib.get_kernel_function("axpb")

    def encode(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.set_arg_tensor(1, a)
        f.set_arg_int(2, n)
        f.dispatch(n)

    fn.run_command_block(encode)
    i = np.arange(n)
    np.testing.assert_array_equal(out[:n], a * np.float32(2) + (i % 7).astype(np.float32))
    assert np.all(out[n:] == -1.0)


def test_large_2d_grid_with_partial_groups(lib):
    w, h = 2003, 1499
    out = np.zeros(w * h + 16, np.uint32)
    fn = lib.get_kernel_function("grid2")

    def encode(f):
        f.start_encoding()
        f.set_arg_tensor(0, out)
        f.dispatch([w, h], [32, 24])

    fn.run_command_block(encode)
    y, x = np.mgrid[0:h, 0:w]
    np.testing.assert_array_equal(out[:w * h].reshape(h, w), (x * 3 + y * 5 + 1).astype(np.uint32))
    assert not out[w * h:].any()


def test_compile_shader_dispatch_with_group_size_and_threads(lib):
    cs = mps_shim.compile_shader(SOURCE)
    out = np.full(1000 * 8 + GUARD, SENTINEL, np.uint32)
    cs.ids1(out, threads=1000, group_size=96)
    rows = out[:8000].reshape(1000, 8).astype(np.int64)
    e = expected_ids([1000], [96])
    for k, name in enumerate(NAMES):
        np.testing.assert_array_equal(rows[:, k], e[name][:, 0], err_msg=name)
    assert np.all(out[8000:] == SENTINEL)
    out2 = np.full(53 * 37 * 15 + GUARD, SENTINEL, np.uint32)
    cs.ids2(out2, threads=(53, 37), group_size=(16, 4))
    rows = out2[:53 * 37 * 15].reshape(-1, 15).astype(np.int64)
    e = expected_ids([53, 37], [16, 4])
    np.testing.assert_array_equal(rows[:, 8:10], e["tptg"][:, :2])
    np.testing.assert_array_equal(rows[:, 13:15], e["dtpt"][:, :2])


# ---- worker threads ---------------------------------------------------------------------------------------------

def test_runtime_reports_worker_threads():
    threads = mps_shim.runtime_info()["threads"]
    configured = os.environ.get("MPS_SHIM_NUM_THREADS")
    if configured and configured.isdigit() and int(configured) > 0:
        assert threads == int(configured)
    else:
        assert threads == len(os.sched_getaffinity(0))


SINGLE_THREAD_CHECK = textwrap.dedent(r"""
    import numpy as np, mps_shim
    src = '''
    #include <metal_stdlib>
    using namespace metal;
    kernel void k(device uint* out, uint2 pos [[thread_position_in_grid]], uint2 size [[threads_per_grid]],
                  uint2 tg [[threadgroup_position_in_grid]], uint2 tptg [[threads_per_threadgroup]]) {
        device uint* o = out + (pos.y * size.x + pos.x) * 4;
        o[0] = tg.x; o[1] = tg.y; o[2] = tptg.x; o[3] = tptg.y;
    }
    kernel void big(device float* out, constant float* a, uint i [[thread_position_in_grid]]) {
        out[i] = a[i] + float(i);
    }
    '''
    lib = mps_shim.compile_shader(src)
    w, h = 53, 37
    out = np.zeros(w * h * 4, np.uint32)
    lib.k(out, threads=(w, h), group_size=(16, 8))
    y, x = np.mgrid[0:h, 0:w]
    want = np.stack([x // 16, y // 8, np.minimum(16, w - x // 16 * 16), np.minimum(8, h - y // 8 * 8)], -1)
    assert np.array_equal(out.reshape(h, w, 4), want), "2-d partial groups"
    n = 3_000_000
    a = np.arange(n, dtype=np.float32)[::-1].copy()
    o = np.zeros(n, np.float32)
    lib.big(o, a)
    assert np.array_equal(o, a + np.arange(n, dtype=np.float32)), "large grid"
    print("threads", mps_shim.runtime_info()["threads"])
""")


def test_single_worker_thread_gives_the_same_results(run_python):
    r = run_python(SINGLE_THREAD_CHECK, env={"MPS_SHIM_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["threads", "1"]
