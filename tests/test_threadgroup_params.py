"""Kernel parameters MLX and ggml declare: `threadgroup T* p [[threadgroup(n)]]`, whose length the
host sets per dispatch (Metal's setThreadgroupMemoryLength), and arrays in constant memory."""
import numpy as np
import pytest

import mps_shim

SOURCE = r"""
#include <metal_stdlib>
using namespace metal;

// Reverses each threadgroup's slice through dynamic threadgroup memory; `tag` is a second block.
kernel void reverse_groups(device float* x, threadgroup float* tmp [[threadgroup(0)]],
                           threadgroup int* tag [[threadgroup(3)]],
                           uint i [[thread_index_in_threadgroup]], uint g [[threadgroup_position_in_grid]],
                           uint n [[threads_per_threadgroup]]) {
    tmp[i] = x[g * n + i];
    if (i == 0) tag[0] = int(g);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    x[g * n + i] = tmp[n - 1 - i] + tag[0] * 1000;
}

// A tree sum in memory sized by the host (ggml's soft_max and rms_norm take `buf` so).
kernel void group_sum(device const float* x, device float* out, threadgroup float* buf [[threadgroup(0)]],
                      uint i [[thread_index_in_threadgroup]], uint g [[threadgroup_position_in_grid]],
                      uint n [[threads_per_threadgroup]]) {
    buf[i] = x[g * n + i];
    for (uint s = n / 2; s > 0; s /= 2) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
        if (i < s) buf[i] += buf[i + s];
    }
    if (i == 0) out[g] = buf[0];
}

// Static and dynamic threadgroup memory together.
kernel void both(device float* x, threadgroup float* dyn [[threadgroup(0)]], uint i [[thread_index_in_threadgroup]]) {
    threadgroup float fixed[1024];
    fixed[i] = x[i];
    dyn[i] = 2 * x[i];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    x[i] = fixed[i] + dyn[i];
}

// MLX's binary_g_nd2 shape: strides as an array parameter in constant memory.
kernel void strided_copy(device const float* a, device float* out, constant const int64_t a_strides[2],
                         uint2 index [[thread_position_in_grid]], uint2 grid [[threads_per_grid]]) {
    out[index.x + grid.x * index.y] = a[index.x * a_strides[0] + index.y * a_strides[1]];
}
"""


@pytest.fixture(scope="module")
def lib():
    return mps_shim.compile_shader(SOURCE)


def test_parameters_are_described(lib):
    params = {p["name"]: p for p in lib.library.kernels["reverse_groups"]["params"]}
    assert params["tmp"]["kind"] == "threadgroup" and params["tmp"]["binding"] == 0
    assert params["tag"]["kind"] == "threadgroup" and params["tag"]["binding"] == 3
    assert params["x"]["binding"] == 0  # buffer and threadgroup indices are separate
    strides = {p["name"]: p for p in lib.library.kernels["strided_copy"]["params"]}["a_strides"]
    assert strides["kind"] == "buffer" and strides["binding"] == 2 and strides["size"] == 8


def test_each_threadgroup_gets_its_own_memory(lib):
    x = np.arange(512, dtype=np.float32)
    lib.reverse_groups(x, group_size=64, threadgroup_memory={0: 64 * 4, 3: 16})
    expected = np.arange(512, dtype=np.float32).reshape(8, 64)[:, ::-1] + 1000 * np.arange(8)[:, None]
    assert np.array_equal(x, expected.ravel())


@pytest.mark.parametrize("group", [32, 256, 1024])
def test_a_reduction_in_host_sized_memory(lib, group):
    rng = np.random.default_rng(group)
    x = rng.integers(-50, 50, 4 * group).astype(np.float32)
    out = np.zeros(4, np.float32)
    lib.group_sum(x, out, threads=4 * group, group_size=group, threadgroup_memory={0: 4 * group})
    assert np.array_equal(out, x.reshape(4, group).sum(axis=1))


def test_static_and_dynamic_memory_together(lib):
    x = np.arange(1024, dtype=np.float32)
    lib.both(x, group_size=1024, threadgroup_memory={0: 4096})
    assert np.array_equal(x, 3 * np.arange(1024, dtype=np.float32))
    with pytest.raises(ValueError, match="28688 bytes .* and 4096 of its own exceed Metal's 32768"):
        lib.both(x, group_size=1024, threadgroup_memory={0: 32768 - 4096 + 16})


def test_lengths_are_checked(lib):
    x = np.zeros(64, np.float32)
    with pytest.raises(mps_shim.DispatchError, match=r"'tag' \(threadgroup int\*\) \[\[threadgroup\(3\)\]\] has no "
                                                    r"memory length"):
        lib.reverse_groups(x, group_size=64, threadgroup_memory={0: 256})
    with pytest.raises(ValueError, match="multiple of 16"):
        lib.reverse_groups(x, group_size=64, threadgroup_memory={0: 250, 3: 16})
    with pytest.raises(mps_shim.ArgumentError, match=r"threadgroup memory index 31 is out of range \(0 to 30\)"):
        lib.reverse_groups(x, group_size=64, threadgroup_memory={31: 16, 0: 256, 3: 16})
    assert not x.any()


def test_a_length_at_an_index_without_a_parameter_is_unused(lib):
    # As Metal: ggml's host code sets index 0 for every kernel, including those without [[threadgroup(0)]].
    x = np.arange(64, dtype=np.float32)
    with pytest.raises(mps_shim.DispatchError, match=r"\[\[threadgroup\(3\)\]\] has no memory length"):
        lib.reverse_groups(x, group_size=64, threadgroup_memory={0: 256, 1: 16})
    assert np.array_equal(x, np.arange(64, dtype=np.float32))


def test_lengths_last_until_start_encoding(lib):
    fn = lib.library.get_kernel_function("group_sum")
    x = np.ones(64, np.float32)
    out = np.zeros(1, np.float32)

    def encode(f, set_length):
        f.start_encoding()
        f.set_arg_tensor(0, x)
        f.set_arg_tensor(1, out)
        if set_length:
            f.set_threadgroup_memory_length(0, 256)
        f.dispatch(64, 64)
        f.dispatch(64, 64)  # the length still holds

    fn.run_command_block(lambda f: encode(f, True))
    assert out[0] == 64
    with pytest.raises(mps_shim.DispatchError, match="has no memory length"):
        fn.run_command_block(lambda f: encode(f, False))


def test_array_parameters_in_constant_memory(lib):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = np.zeros((4, 3), np.float32)
    lib.strided_copy(a, out, [4, 1], threads=(3, 4))
    assert np.array_equal(out, a.T)


@pytest.mark.parametrize("source, message", [
    ("kernel void k(threadgroup float* t, uint i [[thread_position_in_grid]]) {}",
     "a threadgroup kernel parameter is a pointer or reference with [[threadgroup(n)]]"),
    ("kernel void k(device float* t [[threadgroup(0)]]) {}", "needs a threadgroup pointer or reference"),
    ("kernel void k(threadgroup float* t [[threadgroup(31)]]) {}", "threadgroup index '31' must be an integer"),
    ("kernel void k(threadgroup float* a [[threadgroup(0)]], threadgroup float* b [[threadgroup(0)]]) {}",
     "two parameters use [[threadgroup(0)]]"),
])
def test_bad_threadgroup_parameters(source, message):
    with pytest.raises(mps_shim.CompileError) as info:
        mps_shim.ShaderLibrary(source)
    assert message in str(info.value) and "library.metal:1:" in str(info.value)
