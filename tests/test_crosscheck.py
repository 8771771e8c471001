"""The engine cross-check (MPS_SHIM_CROSSCHECK=1, csrc/runtime/crosscheck.cpp).

A lane-loop kernel's dispatch runs the kernel on fibers too, from the same
inputs, and fails with a DispatchError naming the first differing byte. The
buffers keep what lane loops wrote. conftest.py turns the check on for every
test; this file checks the check itself.
"""
import re

import numpy as np
import pytest

import mps_shim
from mps_shim import DispatchError, Tensor

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;
#define TG mem_flags::mem_threadgroup
#define IDS uint t [[thread_position_in_threadgroup]], uint i [[thread_position_in_grid]], \
            uint n [[threads_per_threadgroup]]

// A race (no barrier between a thread's read of `cell` and the others' writes):
// what a thread reads depends on the order the engine runs the threads in.
kernel void racy(device uint* out, IDS) {
    threadgroup uint cell;
    if (t == 0) cell = 0;
    threadgroup_barrier(TG);
    uint mine = cell;
    cell = t + 1;
    threadgroup_barrier(TG);
    out[i] = mine;
}

// In place: running it a second time on its own output would give other numbers.
kernel void mirror_add(device float* x, IDS) {
    threadgroup float tile[256];
    tile[t] = x[i];
    threadgroup_barrier(TG);
    x[i] += 2.0f * tile[n - 1 - t] + simd_sum(1.0f);
}

// dst and src may be the same memory, or overlapping views of one storage.
kernel void mirror_copy(device float* dst, device const float* src, IDS) {
    threadgroup float tile[256];
    tile[t] = src[i];
    threadgroup_barrier(TG);
    dst[i] = tile[n - 1 - t] + 0.5f;
}

kernel void plain(device float* x, uint i [[thread_position_in_grid]]) { x[i] += 1.0f; }
"""

MESSAGE = re.compile(r"kernel 'racy': engine cross-check \(MPS_SHIM_CROSSCHECK\): lane loops and fibers differ in "
                     r"buffer 0 \('out', device uint\*\) at byte offset (\d+) \((\d+) differing bytes in all\); "
                     r"bytes (\d+)\.\.(\d+): fibers ([0-9a-f ]+), lane loops ([0-9a-f ]+)$")


@pytest.fixture(scope="module")
def lib():
    lib = mps_shim.compile_shader(SOURCE)
    for name in ("racy", "mirror_add", "mirror_copy"):
        assert lib.library.kernels[name]["execution"] == "lane_loops", lib.library.kernels[name]["execution_note"]
    assert lib.library.kernels["plain"]["execution"] == "independent"
    return lib


@pytest.fixture
def crosscheck(monkeypatch):
    if mps_shim.checked_mode() != "off":
        pytest.skip("checked mode (MPS_SHIM_CHECKED): checked kernels are not cross-checked")
    monkeypatch.setenv("MPS_SHIM_CROSSCHECK", "1")


def mirrored(x, group):
    return np.concatenate([x[g:g + group][::-1] for g in range(0, len(x), group)])


def test_a_discrepancy_names_the_kernel_buffer_offset_and_bytes(lib, crosscheck):
    out = np.full(64, 0xEEEEEEEE, np.uint32)
    with pytest.raises(DispatchError) as info:
        lib.racy(out, threads=64, group_size=64)
    m = MESSAGE.search(str(info.value))
    assert m, str(info.value)
    offset, _, first, last, fibers, lanes = m.groups()
    offset, first, last = int(offset), int(first), int(last)
    assert first <= offset <= last and first % 8 == 0 and last - first == 7
    # The buffer keeps the lane-loop result: threads in order, each reading its predecessor's write.
    np.testing.assert_array_equal(out, np.arange(64))
    assert bytes.fromhex(lanes) == out.view(np.uint8)[first:last + 1].tobytes()
    assert bytes.fromhex(fibers) != bytes.fromhex(lanes)
    assert fibers.split()[offset - first] != lanes.split()[offset - first]

    monkeypatch_off = pytest.MonkeyPatch()
    monkeypatch_off.setenv("MPS_SHIM_CROSSCHECK", "0")   # read at every dispatch
    try:
        lib.racy(out, threads=64, group_size=64)
    finally:
        monkeypatch_off.undo()
    np.testing.assert_array_equal(out, np.arange(64))


@pytest.mark.parametrize("n, group", [(64, 64), (300, 128), (7, 7)])
def test_a_correct_kernel_passes_and_keeps_the_lane_loop_result(lib, crosscheck, n, group):
    x0 = np.arange(n, dtype=np.float32)
    x = x0.copy()
    lib.mirror_add(x, threads=n, group_size=group)   # in place: inputs are restored before lane loops run
    sizes = np.concatenate([np.full(min(group, n - g), min(group, n - g)) for g in range(0, n, group)])
    simd = np.concatenate([[min(32, s - (k % s) // 32 * 32) for k in range(s)] for s in
                           (min(group, n - g) for g in range(0, n, group))])
    assert len(sizes) == n
    np.testing.assert_array_equal(x, x0 + 2 * mirrored(x0, group) + simd)


def test_the_same_buffer_bound_twice(lib, crosscheck):
    x0 = np.arange(128, dtype=np.float32)
    x = x0.copy()
    lib.mirror_copy(x, x, threads=128, group_size=64)
    np.testing.assert_array_equal(x, mirrored(x0, 64) + 0.5)


def test_overlapping_views_of_one_storage(lib, crosscheck):
    base = np.arange(96, dtype=np.float32)
    t = Tensor.from_numpy(base.copy())
    dst, src = t.view((64,), storage_offset=32), t.view((64,), storage_offset=0)
    lib.mirror_copy(dst, src, threads=64, group_size=64)
    np.testing.assert_array_equal(t.numpy(), np.concatenate([base[:32], base[:64][::-1] + 0.5]))


def test_only_lane_loop_kernels_are_checked(lib, crosscheck):
    x = np.zeros(10, np.float32)
    lib.plain(x)
    np.testing.assert_array_equal(x, 1)
