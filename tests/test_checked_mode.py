"""Checked mode: Metal kernel sanitizers (memcheck, racecheck, initcheck, synccheck).

Each seeded bug is found at its line (the `// <- NAME` marker in the source) and by
the thread the fiber scheduler makes meet it first, worked out by hand for each test:
fibers run in thread order and switch only at barriers and SIMD-group functions; a
SIMD-group operation completes when its last active lane arrives, and that lane goes
on first. Correct kernels report nothing.
"""
import os

import numpy as np
import pytest

import mps_shim


def line_of(source, marker):
    """The 1-based line of `source` holding `// <- marker`."""
    for number, text in enumerate(source.splitlines(), 1):
        if text.rstrip().endswith("// <- " + marker):
            return number
    raise AssertionError(f"no marker {marker}")


def one_report(excinfo, reports, kind, check):
    assert isinstance(excinfo.value, mps_shim.KernelCheckError)
    assert isinstance(excinfo.value, mps_shim.DispatchError)
    mine = [r for r in reports if r["check"] == check]
    assert len(mine) == 1, reports
    r = mine[0]
    assert r["kind"] == kind
    assert r["message"] in str(excinfo.value)
    return r


SYNC = r"""#include <metal_stdlib>
using namespace metal;
kernel void split_barrier(device float* out, uint t [[thread_index_in_threadgroup]]) {
    if (t < 16) {
        threadgroup_barrier(mem_flags::mem_threadgroup);  // <- A
    } else {
        threadgroup_barrier(mem_flags::mem_threadgroup);  // <- B
    }
    out[t] = 1.0f;
}
kernel void split_simd_barrier(device float* out, uint t [[thread_index_in_threadgroup]]) {
    if (t < 8) simdgroup_barrier(mem_flags::mem_none);  // <- S
    threadgroup_barrier(mem_flags::mem_threadgroup);  // <- T
    out[t] = 2.0f;
}
kernel void shuffle_partial(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = simd_shuffle_down(x[i], 4);  // <- SHUFFLE
}
kernel void tree_sum(device float* out, constant float* x, uint t [[thread_index_in_threadgroup]],
                     uint n [[threads_per_threadgroup]], uint g [[threadgroup_position_in_grid]]) {
    threadgroup float partial[256];
    partial[t] = x[g * n + t];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = 128; s > 0; s >>= 1) {
        if (t < s && t + s < n) partial[t] += partial[t + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    const float total = simd_sum(x[g * n + t]);
    if (t == 0) out[2 * g] = partial[0];
    if (t == 32) out[2 * g + 1] = total;
}
"""


@pytest.fixture
def checked():
    with mps_shim.checked() as c:
        yield c


def test_threadgroup_barrier_reached_at_two_places(checked):
    lib = mps_shim.compile_shader(SYNC)
    out = np.zeros(64, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.split_barrier(out, threads=(64,), group_size=(64,))
    # threads 0-15 wait at A, 16-63 at B; at the release thread 0 (first at A) is compared with thread 16
    r = one_report(e, checked.reports, "synccheck", "barrier")
    assert (r["file"], r["line"]) == ("library.metal", line_of(SYNC, "A"))
    assert r["other_line"] == line_of(SYNC, "B") and r["other_thread"] == 16
    assert r["thread_position_in_grid"] == [0, 0, 0] and r["thread_position_in_threadgroup"] == [0, 0, 0]
    assert r["simd_lane"] == 0 and r["simd_group"] == 0
    assert f"library.metal:{line_of(SYNC, 'A')}: synccheck: kernel 'split_barrier'" in str(e.value)


def test_simdgroup_barrier_not_reached_by_live_lanes(checked):
    lib = mps_shim.compile_shader(SYNC)
    out = np.zeros(32, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.split_simd_barrier(out, threads=(32,), group_size=(32,))
    # lanes 0-7 wait at S; lanes 8-31 go on to the threadgroup barrier T (alive, not at S): lane 8 is named
    r = one_report(e, checked.reports, "synccheck", "simdgroup_barrier")
    assert r["line"] == line_of(SYNC, "S") and r["thread_position_in_grid"] == [0, 0, 0]
    assert r["other_thread"] == 8 and r["other_line"] == line_of(SYNC, "T")


def test_shuffle_reads_an_inactive_lane(checked):
    lib = mps_shim.compile_shader(SYNC)
    x = np.arange(17, dtype=np.float32)
    out = np.zeros(17, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.shuffle_partial(out, x, threads=(17,), group_size=(17,))
    # 17 active lanes: lanes 13-16 read lanes 17-20, inactive. The kernel runs as lane loops, which compute
    # the shuffle lane by lane in order: lane 13 (reading lane 17) is named; the line counts all four.
    assert lib.shuffle_partial.function.info["execution"] == "lane_loops"
    r = one_report(e, checked.reports, "initcheck", "inactive_lane")
    assert r["line"] == line_of(SYNC, "SHUFFLE")
    assert r["thread_position_in_grid"] == [13, 0, 0] and r["simd_lane"] == 13 and r["lane"] == 17
    assert r["count"] == 4


def test_correct_kernels_run_clean_and_right(checked):
    lib = mps_shim.compile_shader(SYNC)
    groups, n = 3, 200
    x = np.random.default_rng(1).standard_normal(groups * n).astype(np.float32)
    out = np.zeros(2 * groups, np.float32)
    lib.tree_sum(out, x, threads=(groups * n,), group_size=(n,))
    np.testing.assert_allclose(out[0::2], x.reshape(groups, n).sum(1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[1::2], x.reshape(groups, n)[:, 32:64].sum(1), rtol=1e-4, atol=1e-4)
    full = np.arange(64, dtype=np.float32)
    shuffled = np.zeros(64, np.float32)
    lib.shuffle_partial(shuffled, full, threads=(64,), group_size=(32,))  # full SIMD-groups: lanes past 31 keep theirs
    np.testing.assert_array_equal(shuffled, np.where(np.arange(64) % 32 < 28, full + 4, full))
    assert checked.reports == []


def test_checked_kernels_are_compiled_and_cached_apart(checked):
    lib = mps_shim.compile_shader(SYNC)
    # a barrier under a divergent condition: lane loops would hide which threads reach it, so fibers
    info = lib.split_barrier.function.info
    assert info["execution"] == "fibers" and "checked mode" in info["execution_note"]
    assert lib.tree_sum.function.info["execution"] == "lane_loops"
    mps_shim.set_checked_mode("off")
    try:
        plain = mps_shim.compile_shader(SYNC)
        assert plain.split_barrier.function.info["execution"] == "lane_loops"
        out = np.zeros(64, np.float32)
        plain.split_barrier(out, threads=(64,), group_size=(64,))  # unchecked: no report, no failure
    finally:
        mps_shim.set_checked_mode("on")
    assert checked.reports == []


def test_warn_only_keeps_the_dispatch_and_the_reports(capfd):
    with mps_shim.checked(warn=True) as c:
        lib = mps_shim.compile_shader(SYNC)
        out = np.zeros(64, np.float32)
        lib.split_barrier(out, threads=(64,), group_size=(64,))
    np.testing.assert_array_equal(out, 1.0)
    assert [r["check"] for r in c.reports] == ["barrier"]
    assert "synccheck: kernel 'split_barrier'" in capfd.readouterr().err
    assert mps_shim.checked_mode() == "off" or os.environ.get("MPS_SHIM_CHECKED")


def test_c10_simd_prod_long_reads_inactive_lanes(checked):
    include = pytest.importorskip("torch").__file__.rsplit("/", 1)[0] + "/include"
    header = os.path.join(include, "c10", "metal", "reduction_utils.h")
    if not os.path.exists(header):
        pytest.skip("this torch build ships no c10/metal headers")
    lib = mps_shim.compile_shader("""
    #include <c10/metal/reduction_utils.h>
    kernel void do_prod(device long* out, constant long* inp, uint i [[thread_position_in_grid]]) {
        out[i] = c10::metal::simd_prod(inp[i]);
    }
    """, include_dirs=[include])
    x = np.arange(1, 13, dtype=np.int64)
    out = np.zeros(12, np.int64)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.do_prod(out, x, threads=(12,), group_size=(12,))
    # simd_prod<long> shuffles with simd_shuffle_and_fill_down(..., int2(0), i), i = 16, 8, 4, 2, 1. At i = 16
    # lane 0 reads lane 16, inactive (12 lanes are active); lane loops compute the lanes in order.
    r = one_report(e, checked.reports, "initcheck", "inactive_lane")
    lines = open(header).read().splitlines()
    prod = next(n for n, t in enumerate(lines, 1) if "simd_prod(T val)" in t and "is_same_v<T, long>" in t)
    # the statement `val *= as_type<T>(` whose next line holds the call: g++'s line tables put an inlined call
    # spanning lines at the statement's first line
    expect = next(n for n, t in enumerate(lines, 1) if n > prod and "val *= as_type<T>(" in t)
    assert "simd_shuffle_and_fill_down" in lines[expect]
    assert r["file"].endswith("c10/metal/reduction_utils.h") and r["line"] == expect
    assert r["thread_position_in_grid"] == [0, 0, 0] and r["lane"] == 16


MEMORY = r"""#include <metal_stdlib>
using namespace metal;
kernel void read_past(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = x[i + 1];  // <- READ
}
kernel void write_past(device float* out, uint i [[thread_position_in_grid]]) {
    out[i + 2] = 1.0f;  // <- WRITE
}
kernel void scalars_past(device int* out, constant int* params [[buffer(1)]], uint i [[thread_position_in_grid]]) {
    out[i] = params[0] + params[1] + (i == 3 ? params[2] : 0);  // <- BYTES
}
kernel void vector_misaligned(device float* out, device const float* x, uint i [[thread_position_in_grid]]) {
    device const float4* v = (device const float4*)(x + 1);
    out[i] = v[i].y;  // <- ALIGN
}
kernel void shifted(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    out[i] = x[int(i) - 2];  // <- BEFORE
}
kernel void in_bounds(device float* out, constant float* x, uint i [[thread_position_in_grid]]) {
    device const float4* v = reinterpret_cast<device const float4*>(x);
    out[i] = v[i / 4][i % 4] + *(x + i);
}
"""


def test_read_past_a_buffer(checked):
    lib = mps_shim.compile_shader(MEMORY)
    x = np.arange(16, dtype=np.float32)
    out = np.zeros(16, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.read_past(out, x)
    # 16 threads, one group: thread 15 reads x[16], byte 64 of the 64 bound
    r = one_report(e, checked.reports, "memcheck", "out_of_bounds")
    assert r["line"] == line_of(MEMORY, "READ") and r["thread_position_in_grid"] == [15, 0, 0]
    assert (r["buffer"], r["param"], r["offset"], r["extent"], r["access_size"]) == (1, "x", 64, 64, 4)
    assert r["is_write"] is False
    assert "buffer 1 (x), outside its 64 bytes" in r["message"]


def test_write_past_a_buffer(checked):
    lib = mps_shim.compile_shader(MEMORY)
    out = np.zeros(16, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.write_past(out)
    # threads 14 and 15 write out[16] and out[17]; threads run in order, so 14 is named first (2 times).
    # Checked mode keeps bad accesses off memory: those writes went nowhere.
    r = one_report(e, checked.reports, "memcheck", "out_of_bounds")
    assert r["line"] == line_of(MEMORY, "WRITE") and r["thread_position_in_grid"] == [14, 0, 0]
    assert (r["buffer"], r["param"], r["offset"], r["extent"], r["count"]) == (0, "out", 64, 64, 2)
    np.testing.assert_array_equal(out, np.where(np.arange(16) < 2, 0.0, 1.0))


def _blob_over_malloc(nbytes, numel, offset_elements=0):
    """(an mps float32 tensor of `numel` elements at `offset_elements` into a fresh aoti_torch_mps_malloc
    buffer of `nbytes`, the buffer) — AOTInductor's generated code binds its buffers so."""
    from mps_shim._native import ffi, lib

    buf = ffi.new("void**")
    mps_shim.check(lib.aoti_torch_mps_malloc(buf, nbytes))
    out = ffi.new("AtenTensorHandle*")
    mps_shim.check(lib.aoti_torch_create_tensor_from_blob(
        ffi.cast("char*", buf[0]) + 4 * offset_elements, 1, ffi.new("int64_t[]", [numel]),
        ffi.new("int64_t[]", [1]), 0, 6, lib.aoti_torch_device_type_mps(), 0, out))
    return mps_shim.Tensor(out[0]), ffi.gc(buf, lambda b: lib.aoti_torch_mps_free(b[0]))


def test_a_blob_over_malloc_memory_is_bounded_by_the_allocation(checked):
    if not mps_shim.tensor.device_memory_is_host():
        pytest.skip("fills the malloc'd buffer through a host pointer")
    from mps_shim._native import ffi

    lib = mps_shim.compile_shader(MEMORY)
    # x: 15 floats at the start of a 64-byte buffer. Thread 14 reads x[15], past the tensor's 60 bytes but
    # inside the allocation, which is what a Metal buffer of 64 bytes allows: clean.
    x, keep = _blob_over_malloc(64, 15)
    ffi.memmove(ffi.cast("void*", x.data_ptr), b"\0" * 64, 64)
    out = np.zeros(15, np.float32)
    lib.read_past(out, x, threads=15)
    assert checked.reports == []
    # y: 13 floats from byte 8 of a 64-byte buffer. Thread i writes y[i + 2]: thread 11 writes byte 60 of
    # the buffer (inside); threads 12 to 14 write from byte 64 on, outside. The extent counts from the
    # binding: 56 bytes.
    y, keep_y = _blob_over_malloc(64, 13, offset_elements=2)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.write_past(y, threads=15)
    r = one_report(e, checked.reports, "memcheck", "out_of_bounds")
    assert (r["buffer"], r["param"], r["offset"], r["extent"], r["count"]) == (0, "out", 56, 56, 3)
    assert r["thread_position_in_grid"] == [12, 0, 0]


def test_read_past_bound_bytes(checked):
    lib = mps_shim.compile_shader(MEMORY)
    out = np.zeros(4, np.int32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.scalars_past(out, [3, 4], arg_casts={1: "int32"})  # 8 bytes bound with setBytes
    r = one_report(e, checked.reports, "memcheck", "out_of_bounds")
    assert r["line"] == line_of(MEMORY, "BYTES") and r["thread_position_in_grid"] == [3, 0, 0]
    assert (r["buffer"], r["param"], r["offset"], r["extent"], r["access_size"]) == (1, "params", 8, 8, 4)


def test_misaligned_vector_read(checked):
    lib = mps_shim.compile_shader(MEMORY)
    x = np.arange(20, dtype=np.float32)
    out = np.zeros(4, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.vector_misaligned(out, x)
    # the float4 view starts 4 bytes into x: thread 0's v[0] is at byte 4, not a multiple of 16
    r = one_report(e, checked.reports, "memcheck", "misaligned")
    assert r["line"] == line_of(MEMORY, "ALIGN") and r["thread_position_in_grid"] == [0, 0, 0]
    assert (r["buffer"], r["offset"], r["alignment"], r["access_size"]) == (1, 4, 16, 16)
    assert r["count"] == 4


def test_a_view_may_read_its_storage_before_its_offset(checked):
    lib = mps_shim.compile_shader(MEMORY)
    storage = np.arange(18, dtype=np.float32)
    out = np.zeros(16, np.float32)
    view = mps_shim.Tensor.from_numpy(storage).view((16,), storage_offset=2)  # Metal: the buffer at an offset
    lib.shifted(out, view)
    np.testing.assert_array_equal(out, storage[:16])
    assert checked.reports == []
    with pytest.raises(mps_shim.KernelCheckError) as e:  # a slice is a storage of its own: nothing before it
        lib.shifted(out, storage[2:].copy())
    r = one_report(e, checked.reports, "memcheck", "out_of_bounds")
    assert r["line"] == line_of(MEMORY, "BEFORE") and r["thread_position_in_grid"] == [0, 0, 0]
    assert (r["buffer"], r["param"], r["offset"], r["count"]) == (1, "x", -8, 2)


def test_in_bounds_accesses_are_clean(checked):
    lib = mps_shim.compile_shader(MEMORY)
    x = np.arange(16, dtype=np.float32)
    out = np.zeros(16, np.float32)
    lib.in_bounds(out, x)
    np.testing.assert_array_equal(out, 2 * x)
    assert checked.reports == []
    assert "not checked" not in lib.in_bounds.function.info["execution_note"]


THREADGROUP = r"""#include <metal_stdlib>
using namespace metal;
kernel void tg_race(device float* out, uint t [[thread_index_in_threadgroup]]) {
    threadgroup float cell[4];
    cell[t % 4] = float(t);  // <- RACE
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = cell[t % 4];
}
kernel void tg_uninit(device float* out, uint t [[thread_index_in_threadgroup]]) {
    threadgroup float vals[64];
    if (t < 32) vals[t] = float(t);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = vals[63 - t];  // <- UNINIT
}
kernel void tg_bounds(device float* out, uint t [[thread_index_in_threadgroup]]) {
    threadgroup float tile[16];
    tile[t] = 1.0f;  // <- BOUNDS
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = tile[t % 16];
}
kernel void tg_read_write(device float* out, uint t [[thread_index_in_threadgroup]]) {
    threadgroup float v[32];
    v[t] = float(t);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = v[(t + 1) % 32];  // <- RW_READ
    v[t] = -1.0f;  // <- RW_WRITE
}
kernel void tg_clean(device float* out, uint t [[thread_index_in_threadgroup]], uint n [[threads_per_threadgroup]]) {
    threadgroup float a[64];
    threadgroup float b[8][9];
    a[t] = float(t);
    if (t < 8) for (uint j = 0; j < 9; ++j) b[t][j] = float(j);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = a[n - 1 - t] + b[t % 8][t % 9];
}
"""


def test_threadgroup_write_write_race(checked):
    lib = mps_shim.compile_shader(THREADGROUP)
    out = np.zeros(8, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.tg_race(out, threads=(8,), group_size=(8,))
    # threads 0-3 write cell[0..3] before the barrier, then thread 4 writes cell[0] in the same stretch
    r = one_report(e, checked.reports, "racecheck", "race")
    assert r["line"] == line_of(THREADGROUP, "RACE") and r["thread_position_in_threadgroup"] == [4, 0, 0]
    assert r["other_thread"] == 0 and r["other_line"] == line_of(THREADGROUP, "RACE")
    assert r["is_write"] is True and r["what"] == "cell" and r["offset"] == 0 and r["count"] == 4


def test_threadgroup_read_write_races(checked):
    lib = mps_shim.compile_shader(THREADGROUP)
    out = np.zeros(32, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.tg_read_write(out, threads=(32,), group_size=(32,))
    # after the barrier thread t reads v[t + 1] and then writes v[t]; the threads run in order (lane loops),
    # so thread 1's write of v[1] follows thread 0's read of it (and so on to 31), and thread 31's read
    # of v[0] follows thread 0's write of it
    races = {r["line"]: r for r in checked.reports if r["check"] == "race"}
    assert sorted(races) == [line_of(THREADGROUP, "RW_READ"), line_of(THREADGROUP, "RW_WRITE")]
    w, r = races[line_of(THREADGROUP, "RW_WRITE")], races[line_of(THREADGROUP, "RW_READ")]
    assert (w["thread_position_in_grid"], w["is_write"], w["other_thread"], w["count"]) == ([1, 0, 0], True, 0, 31)
    assert w["other_line"] == line_of(THREADGROUP, "RW_READ") and w["offset"] == 4
    assert (r["thread_position_in_grid"], r["is_write"], r["other_thread"], r["count"]) == ([31, 0, 0], False, 0, 1)
    assert r["other_line"] == line_of(THREADGROUP, "RW_WRITE") and r["offset"] == 0
    assert all(x["kind"] == "racecheck" for x in races.values()) and "racecheck" in str(e.value)


def test_threadgroup_read_of_unwritten_memory(checked):
    lib = mps_shim.compile_shader(THREADGROUP)
    out = np.zeros(64, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.tg_uninit(out, threads=(64,), group_size=(64,))
    # threads 32-63 never write; thread 0 reads vals[63] first (threads 0-31 read 63..32)
    r = one_report(e, checked.reports, "initcheck", "uninitialized")
    assert r["line"] == line_of(THREADGROUP, "UNINIT") and r["thread_position_in_grid"] == [0, 0, 0]
    assert (r["offset"], r["access_size"], r["what"], r["count"]) == (252, 4, "vals", 32)


def test_threadgroup_array_bounds(checked):
    lib = mps_shim.compile_shader(THREADGROUP)
    out = np.zeros(20, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.tg_bounds(out, threads=(20,), group_size=(20,))
    r = one_report(e, checked.reports, "memcheck", "threadgroup_bounds")
    assert r["line"] == line_of(THREADGROUP, "BOUNDS") and r["thread_position_in_threadgroup"] == [16, 0, 0]
    assert (r["offset"], r["extent"], r["access_size"], r["what"], r["count"]) == (64, 64, 4, "tile", 4)


def test_threadgroup_clean_kernel(checked):
    lib = mps_shim.compile_shader(THREADGROUP)
    out = np.zeros(64, np.float32)
    lib.tg_clean(out, threads=(128,), group_size=(64,))
    t = np.arange(64)
    np.testing.assert_array_equal(out, (63 - t) + t % 9)
    assert checked.reports == []


TG_PARAM = r"""#include <metal_stdlib>
using namespace metal;
kernel void dynamic_tile(device float* out, threadgroup float* tile [[threadgroup(0)]],
                         uint t [[thread_index_in_threadgroup]]) {
    tile[t + 16] = float(t);  // <- TILE
    threadgroup_barrier(mem_flags::mem_threadgroup);
    out[t] = tile[t % 16 + 16];
}
"""


def test_threadgroup_parameter_bounds(checked):
    lib = mps_shim.compile_shader(TG_PARAM)
    out = np.zeros(32, np.float32)
    with pytest.raises(mps_shim.KernelCheckError) as e:
        lib.dynamic_tile(out, threads=32, group_size=32, threadgroup_memory={0: 128})
    # 128 bytes hold 32 floats: thread 16 writes tile[32], the first past them (threads 16-31: 16 times)
    r = one_report(e, checked.reports, "memcheck", "threadgroup_bounds")
    assert r["line"] == line_of(TG_PARAM, "TILE") and r["thread_position_in_threadgroup"] == [16, 0, 0]
    assert (r["offset"], r["extent"], r["what"], r["buffer"], r["count"]) == (128, 128, "tile", 0, 16)
    lib.dynamic_tile(out, threads=32, group_size=32, threadgroup_memory={0: 192})  # room for all: clean
    np.testing.assert_array_equal(out, np.arange(32) % 16)
